"""Signals reach `run` before anything slow (issue 14, item 6): a real subprocess, watched through /proc."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from helpers.peers import wait_until

from emotion_edge.device.model.metadata import packaged_model_path


def _caught(pid: int, signum: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def _litert_loaded(pid: int) -> bool:
    return "litert" in Path(f"/proc/{pid}/maps").read_text()


def test_sighup_is_handled_before_the_model_loads_and_does_not_kill_run(tmp_path):
    # Before: the handler came after the model load; SIGHUP in the first ~0.3 s ended the daemon with 129.
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        assert cv2.imwrite(str(frames / f"{i}.png"), np.full((120, 160, 3), 60 * i, np.uint8))
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
