"""The daemon as a systemd service: sd_notify over a real AF_UNIX datagram socket, the watchdog fed from the
loop, READY only after the first frame, the status file, and SIGHUP reloads that keep the old model on failure."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.model_variants import padded_model
from helpers.peers import wait_until

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig, ServiceConfig
from emotion_edge.device.daemon.app import build_daemon
from emotion_edge.device.daemon.loop import Daemon
from emotion_edge.device.daemon.service import ServiceNotifier, StatusFile, read_status
from emotion_edge.device.model.metadata import file_sha256, packaged_model_path
from emotion_edge.device.model.store import ModelStore
from emotion_edge.device.sources import SourceBase

WATCHDOG_USEC = 300_000  # heartbeats every 0.1 s


class NotifyListener:
    """A stand-in for systemd's notification socket: records every datagram with its arrival time."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def times(self, line: str) -> list[float]:
        return [t for t, m in self.messages if line in m.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify(monkeypatch):
    folder = tempfile.mkdtemp(prefix="ee-notify-")  # short: AF_UNIX paths are limited to 107 bytes
    path = os.path.join(folder, "notify.sock")
    listener = NotifyListener(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield listener
    listener.close()
    shutil.rmtree(folder)


class ScriptedCamera(SourceBase):
    """Blank frames; the first only after `first_delay` s; after `block_after` frames read() blocks, ignoring
    its timeout, until `release` is set: a driver stuck in a syscall, which hangs the loop itself."""

    name = "scripted"

    def __init__(self, first_delay: float = 0.0, block_after: int | None = None):
        self.first_delay, self.block_after = first_delay, block_after
        self.first_frame_at: float | None = None
        self.blocked_at: float | None = None
        self.release = threading.Event()
        self._opened = 0.0

    def open(self):
        self._opened = time.monotonic()

    def read(self, timeout):
        waited = time.monotonic() - self._opened
        if waited < self.first_delay:
            time.sleep(min(timeout, self.first_delay - waited))
            return None
        if self.block_after is not None and self._index >= self.block_after:
            self.blocked_at = self.blocked_at or time.monotonic()
            self.release.wait()
            return None
        time.sleep(0.01)
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        return self._emit(np.full((120, 160), 90, np.uint8), time.monotonic())

    def close(self):
        self.release.set()


def _config(tmp_path: Path, model: Path | None = None) -> DaemonConfig:
    return DaemonConfig(camera=CameraConfig(source="unused"),
                        model=ModelConfig(path=model or packaged_model_path(), threads=1),
                        service=ServiceConfig(status_file=tmp_path / "status.json", status_interval_s=0.1))


def _run_in_thread(daemon: Daemon) -> threading.Thread:
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    return thread


def test_ready_only_after_the_first_frame_and_heartbeats_meanwhile(notify, tmp_path):
    camera = ScriptedCamera(first_delay=1.2)  # reads time out every 0.5 s meanwhile
    daemon = build_daemon(_config(tmp_path), source=camera)
    thread = _run_in_thread(daemon)
    wait_until(lambda: notify.times("READY=1"), "READY=1")
    daemon.stop()
    thread.join(5)
    ready = notify.times("READY=1")[0]
    assert camera.first_frame_at is not None and ready > camera.first_frame_at
    # The loop served the watchdog while it waited for the camera, so a slow camera start is not a hang.
    assert len([t for t in notify.times("WATCHDOG=1") if t < camera.first_frame_at]) >= 2
    assert notify.times("STOPPING=1"), "SIGTERM's stop() tells systemd the service is stopping"
    assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for _, m in notify.messages)


def test_heartbeat_stops_when_the_loop_hangs(notify, tmp_path):
    camera = ScriptedCamera(block_after=10)
    daemon = build_daemon(_config(tmp_path), source=camera)
    thread = _run_in_thread(daemon)
    wait_until(lambda: camera.blocked_at is not None, "the camera read to block")
    # Counted, not timed: on a busy machine the listener may record a heartbeat sent just before the read
    # blocked well after it, so let whatever was already sent arrive, then count what comes after.
    time.sleep(0.5)
    settled = len(notify.times("WATCHDOG=1"))
    time.sleep(1.0)  # ten heartbeat periods with the loop stuck
    after = len(notify.times("WATCHDOG=1"))
    camera.release.set()
    daemon.stop()
    thread.join(5)
    assert settled >= 2, "heartbeats while the loop ran"
    assert after == settled, f"{after - settled} heartbeats while the loop was stuck"


def test_no_watchdog_no_messages_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = ServiceNotifier()
    assert not notifier.enabled and notifier.watchdog_interval_s is None and not notifier.heartbeat()


def test_watchdog_meant_for_another_process_is_ignored(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert ServiceNotifier().watchdog_interval_s is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert ServiceNotifier().watchdog_interval_s == pytest.approx(10.0)


def test_status_file_turns_itself_off_when_its_folder_is_missing(tmp_path, caplog):
    caplog.set_level("INFO")
    status = StatusFile(tmp_path / "missing" / "status.json")
    status.write({"pid": 1})
    assert status.path is None and "status file" in caplog.text
    assert read_status(tmp_path / "missing" / "status.json") is None


@pytest.fixture
def store(tmp_path) -> ModelStore:
    store = ModelStore(tmp_path / "models")
    store.activate(store.adopt(packaged_model_path()))
    return store


def test_reload_swaps_in_a_good_model_and_keeps_the_old_one_on_a_corrupt_one(store, tmp_path, caplog):
    daemon = build_daemon(_config(tmp_path, store.link), source=ScriptedCamera())
    shipped = daemon.classifier.sha256
    # A corrupt model: truncated bytes under a name `current` can point at.
    corrupt = store.root / ("0" * 64 + ".tflite")
    corrupt.write_bytes(packaged_model_path().read_bytes()[:5000])
    shutil.copy(packaged_model_path().with_suffix(".json"), corrupt.with_suffix(".json"))
    store.restore(corrupt.name)
    assert daemon.reload_model() is False
    assert daemon.classifier.sha256 == shipped and daemon.pipeline.classifier is daemon.classifier
    assert daemon.reload_error["target"] == str(corrupt) and "sha256" in daemon.reload_error["reason"]
    assert "reload refused, keeping model" in caplog.text

    good = store.adopt(padded_model(tmp_path, "good"))
    store.activate(good)
    assert daemon.reload_model() is True
    assert daemon.classifier.sha256 == good == daemon.pipeline.classifier.sha256 and daemon.reload_error is None
    status = read_status(tmp_path / "status.json")
    assert status["model_sha256"] == good and status["pid"] == os.getpid()


def test_reload_refuses_a_valid_model_with_other_labels(store, tmp_path):
    daemon = build_daemon(_config(tmp_path, store.link), source=ScriptedCamera())
    labels = list(daemon.classifier.labels)
    store.activate(store.adopt(padded_model(tmp_path, "swapped", labels[1:] + labels[:1])))
    assert daemon.reload_model() is False
    assert "differ from the running model's" in daemon.reload_error["reason"]


def test_sighup_reloads_a_running_daemon_process(store, tmp_path):
    """The real command: SIGHUP -> reload between frames; the status file reports the new model."""
    config = tmp_path / "config.toml"
    config.write_text(f'[camera]\nsource = "{Path(__file__).parent.parent / "examples" / "demo.mp4"}"\nloop = true\n'
                      f'fps = 20\n[model]\npath = "{store.link}"\nthreads = 1\n'
                      f'[service]\nstatus_file = "{tmp_path / "status.json"}"\nstatus_interval_s = 0.2\n')
    proc = subprocess.Popen([sys.executable, "-m", "emotion_edge.main", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: (read_status(tmp_path / "status.json") or {}).get("ready"), "the daemon to report ready", timeout=30)
        good = store.adopt(padded_model(tmp_path, "hup"))
        store.activate(good)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: read_status(tmp_path / "status.json")["model_sha256"] == good, "the reloaded model reported")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert json.loads(out.decode().strip().splitlines()[-1])["model_sha256"] == good
    assert "stopped" in err.decode()


def test_store_refuses_a_copy_whose_contract_names_another_model(store, tmp_path):
    import io

    from emotion_edge.device.model.store import StoreError

    model = padded_model(tmp_path, "mismatch")
    sidecar = packaged_model_path().with_suffix(".json").read_bytes()  # the shipped model's contract
    before = sorted(p.name for p in store.root.iterdir())
    with pytest.raises(StoreError, match="field 'sha256' is .* the model is"):
        store.receive(io.BytesIO(sidecar + model.read_bytes()), file_sha256(model), model.stat().st_size, len(sidecar))
    assert sorted(p.name for p in store.root.iterdir()) == before
    with pytest.raises(StoreError, match="not on the device"):
        store.activate(file_sha256(model))
