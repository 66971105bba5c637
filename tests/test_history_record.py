"""`emotion-edge listen --record`: a real daemon on the demo clip publishing to a real mosquitto, the recorder a
real `emotion-edge` process; the recorder and then the broker restarted mid-run: no duplicates, no gap in seq."""

from __future__ import annotations

import csv
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers.mosquitto import Mosquitto
from helpers.peers import free_port, require_binary, wait_until

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig
from emotion_edge.device.daemon.app import attach_mqtt, build_daemon
from emotion_edge.device.history.store import Message, RecordingError, RecordStore
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.mqtt.config import MqttConfig
from emotion_edge.device.tracking import TrackerConfig

DEVICE = "record-cam"
DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.mp4"
TIMEOUT = 30.0


def _daemon_config(port: int, tmp_path: Path) -> DaemonConfig:
    mqtt = MqttConfig(enabled=True, host="127.0.0.1", port=port, spool_path=tmp_path / "spool.db",
                      update_min_interval_s=0.0, update_refresh_s=0.2, state_min_interval_s=0.2, stats_interval_s=0.5,
                      reconnect_min_s=0.1, reconnect_max_s=0.5, shutdown_flush_s=3.0)
    return DaemonConfig(device_id=DEVICE, camera=CameraConfig(source=str(DEMO), loop=True, fps=30.0),
                        model=ModelConfig(path=packaged_model_path(), threads=1),
                        tracker=TrackerConfig(max_missed=1), mqtt=mqtt)


def _record(port: int, path: Path, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "emotion_edge.main", "listen", "--host", "127.0.0.1", "--port", str(port),
               "--device", DEVICE, "--client-id", "test-recorder", "--persistent", "--record", str(path),
               "--batch-s", "0.2"]
    with log.open("ab") as stderr:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=TIMEOUT) == 0


def _seqs(path: Path) -> list[int]:
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return [row[0] for row in db.execute("SELECT seq FROM events WHERE device_id = ? ORDER BY seq", (DEVICE,))]
        except sqlite3.OperationalError:  # not created yet
            return []


@pytest.mark.peer
def test_a_recording_survives_recorder_and_broker_restarts_without_gap_or_duplicate(tmp_path):
    recording, log = tmp_path / "room.sqlite", tmp_path / "recorder.log"
    with Mosquitto(require_binary("mosquitto", "mosquitto"), tmp_path / "broker", free_port(),
                   persistence=True) as broker:
        recorder = _record(broker.port, recording, log)
        wait_until(lambda: "recording " in log.read_text(), "the recorder's subscription", TIMEOUT)  # session exists
        daemon = build_daemon(_daemon_config(broker.port, tmp_path))
        publisher = attach_mqtt(daemon)
        loop = threading.Thread(target=daemon.run, name="camera-loop", daemon=True)
        loop.start()
        try:
            wait_until(lambda: len(_seqs(recording)) >= 5, "events recorded", TIMEOUT)
            _stop(recorder)  # the recorder away: the broker queues for its persistent session
            away = publisher.counters.events
            wait_until(lambda: publisher.counters.events >= away + 5, "events while the recorder is away", TIMEOUT)
            recorder = _record(broker.port, recording, log)
            wait_until(lambda: len(_seqs(recording)) >= away + 5, "the queued events recorded", TIMEOUT)
            broker.stop()  # the broker away: the daemon spools
            wait_until(lambda: publisher.stats()["spool"]["depth"] >= 5, "events spooled during the outage", TIMEOUT)
            broker.start()
            wait_until(lambda: publisher.counters.connects >= 2 and publisher.stats()["spool"]["depth"] == 0,
                       "the spool to drain", TIMEOUT)
        finally:
            daemon.stop()
            loop.join(10)
            publisher.close()
        created = publisher.counters.events
        wait_until(lambda: len(_seqs(recording)) >= created, f"all {created} events recorded", TIMEOUT,
                   lambda: f"recorded {_seqs(recording)}; recorder log: {log.read_text()[-1500:]}")
        _stop(recorder)
    assert _seqs(recording) == list(range(1, created + 1)), log.read_text()[-2000:]  # no gap, no duplicate
    with sqlite3.connect(recording) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM states").fetchone()[0] > 0
        assert db.execute("SELECT COUNT(*) FROM stats").fetchone()[0] > 0
        # A retained state comes again on every reconnect; its identity (device, time) keeps one row.
        assert db.execute("SELECT COUNT(*) - COUNT(DISTINCT time) FROM states").fetchone()[0] == 0
        types = dict(db.execute("SELECT type, COUNT(*) FROM events GROUP BY type"))
    assert types.get("new", 0) >= 2 and types.get("end", 0) >= 1, types

    out = tmp_path / "csv"
    subprocess.run([sys.executable, "-m", "emotion_edge.main", "listen", "--record", str(recording),
                    "--export-csv", str(out)], check=True, capture_output=True)
    with (out / "events.csv").open() as f:
        assert [int(row["seq"]) for row in csv.DictReader(f)] == list(range(1, created + 1))


def _event(seq: int, device: str = "a") -> Message:
    face = {"emotion": "happy", "confidence": 0.9, "probabilities": {"happy": 0.9, "sad": 0.1},
            "box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}}
    return Message("events", {"version": 1, "seq": seq, "type": "new", "reason": "appeared", "device_id": device,
                              "track_id": 1, "time": "2026-12-07T01:00:00.000Z", "monotonic": 1.0, "frame": seq,
                              "track_age_s": 0.0, "before": None, "after": face, "model_sha256": "0" * 64}, 0.0)


def test_the_store_keys_events_by_device_and_seq_and_appends_across_reopening(tmp_path):
    path = tmp_path / "r.sqlite"
    store = RecordStore(path)
    first = store.append([_event(1), _event(2), _event(1), _event(1, "b")])
    assert (first.inserted, first.duplicates) == (3, 1)
    store.close()
    store = RecordStore(path)  # reopened: appends, never rewrites
    second = store.append([_event(2), _event(3), Message("availability", {"version": 1}, 0.0)])
    assert (second.inserted, second.duplicates, second.ignored) == (1, 1, 1)
    assert store.counts()["events"] == 4
    store.close()
    (tmp_path / "junk").write_text("not a database" * 100)
    with pytest.raises(RecordingError):
        RecordStore(tmp_path / "junk")
    with pytest.raises(RecordingError):
        RecordStore(tmp_path / "missing.sqlite", readonly=True)
