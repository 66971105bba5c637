"""Signals (issue 14, item 6): they reach `run` before anything slow, and `serve` reloads on SIGHUP; real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import httpx
import numpy as np
from helpers.model_variants import padded_model
from helpers.peers import free_port, wait_until
from helpers.photo import frame_folder

from emotion_edge.device.model.metadata import file_sha256, packaged_model_path


def _caught(pid: int, signum: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def _litert_loaded(pid: int) -> bool:
    return "litert" in Path(f"/proc/{pid}/maps").read_text()


def test_sighup_is_handled_before_the_model_loads_and_does_not_kill_run(tmp_path):
    # Before: the handler came after the model load; SIGHUP in the first ~0.3 s ended the daemon with 129.
    frames = frame_folder(tmp_path / "frames")
    config = tmp_path / "config.toml"
    config.write_text(f'[camera]\nsource = "{frames}"\nloop = true\nfps = 30.0\n'
                      f'[model]\npath = "{packaged_model_path()}"\nthreads = 1\n')
    process = subprocess.Popen([sys.executable, "-m", "emotion_edge.main", "run", "--config", str(config),
                                "--max-frames", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        samples: list[tuple[bool, bool]] = []

        def handler_seen() -> bool:
            sample = (_caught(process.pid, signal.SIGHUP), _litert_loaded(process.pid))
            samples.append(sample)
            return sample[0]

        wait_until(handler_seen, "run to install its SIGHUP handler")
        process.send_signal(signal.SIGHUP)  # a reload request while still starting
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert (True, False) in samples, f"the handler came only after LiteRT was loaded: {samples[-3:]}"
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    assert b'"frames": 20' in out


def _point(link: Path, target: Path) -> None:
    """Re-point the [model] path symlink atomically, as a deploy does."""
    staged = link.with_name(link.name + ".new")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target)
    os.replace(staged, link)


def test_serve_reloads_its_model_on_sighup_and_keeps_it_when_the_new_one_is_refused(tmp_path):
    # Before: SIGHUP's default action ended `serve` (exit -1), so a deploy's reload took the API down.
    first, second = padded_model(tmp_path, "first"), padded_model(tmp_path, "second")
    relabelled = padded_model(tmp_path, "relabelled", labels=["happy", "angry", "disgust", "fear", "neutral", "sad",
                                                              "surprise"])
    link = tmp_path / "current.tflite"
    _point(link, first)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\npath = "{link}"\nthreads = 1\n[http]\nport = {port}\nmax_concurrent = 1\n')
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "emotion_edge.main", "serve", "--config", str(config)],
                                   stdout=subprocess.PIPE, stderr=log)
    log_text = lambda: log_path.read_text(errors="replace")  # noqa: E731
    ok, png = cv2.imencode(".png", np.full((120, 160, 3), 90, np.uint8))

    def served_sha() -> str:
        response = httpx.post(f"http://127.0.0.1:{port}/api/v1/analyze", files={"image": ("grey.png", png.tobytes())},
                              timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["model"]["sha256"]

    try:
        assert b"serving the analyze API" in process.stdout.readline(), log_text()
        before = served_sha()
        _point(link, relabelled)  # loads, but other labels: refused, the served model stays
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in log_text() or process.poll() is not None, "the refused reload")
        assert process.poll() is None, f"serve died on SIGHUP ({process.returncode}): {log_text()[-1500:]}"
        assert "labels" in log_text() and str(relabelled) in log_text()  # the log says which file and why
        assert served_sha() == before
        _point(link, second)
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded model" in log_text() or process.poll() is not None, "the reload")
        after = served_sha()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log_text()[-1500:]
    finally:
        process.kill()
        process.stdout.close()
    assert before != after
    assert after == file_sha256(second)
