"""Shared by the MQTT tests and bench/mqtt_latency.py: synthetic readings, a face video, the payload schemas."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from emotion_edge.device.contract import EMOTIONS
from emotion_edge.device.geometry import Box
from emotion_edge.device.pipeline import FaceReading, FrameReading
from emotion_edge.device.smoothing import SmoothedState

SCHEMAS = Path(__file__).resolve().parent.parent.parent / "device" / "schemas"
LABELS = tuple(EMOTIONS)
MODEL_SHA = "ab" * 32


def probabilities(emotion: str, confidence: float = 0.8) -> np.ndarray:
    p = np.full(len(LABELS), (1.0 - confidence) / (len(LABELS) - 1))
    p[LABELS.index(emotion)] = confidence
    return p


def face(track_id: int, emotion: str, confidence: float = 0.8, is_new: bool = False,
         box: tuple[float, float, float, float] = (0.25, 0.2, 0.3, 0.4)) -> FaceReading:
    p = probabilities(emotion, confidence)
    state = SmoothedState(LABELS.index(emotion), confidence, p, changed=is_new)
    pixels = Box(box[0] * 640, box[1] * 480, box[2] * 640, box[3] * 480)
    return FaceReading(track_id, pixels, box, p, state, is_new)


def reading(index: int, timestamp: float, faces: tuple[FaceReading, ...] = (),
            ended: tuple[int, ...] = ()) -> FrameReading:
    return FrameReading(index, timestamp, faces, ended, detected=True)


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def validator(name: str):
    from jsonschema import Draft202012Validator

    document = schema(name)
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=Draft202012Validator.FORMAT_CHECKER)


def write_face_video(path: Path, cycles: int = 3, face_frames: int = 8, empty_frames: int = 3) -> Path:
    """A 320x240 clip where scikit-image's astronaut appears for `face_frames` frames, then leaves, `cycles` times.

    With the tracker's max_missed = 1 every cycle gives a `new` and an `end` event.
    """
    import cv2

    from helpers.photo import astronaut_head

    head = cv2.resize(astronaut_head(), (150, 150))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(cycles):
        for i in range(face_frames):
            canvas = np.full((240, 320, 3), 90, np.uint8)
            canvas[45:195, 40 + 4 * i: 190 + 4 * i] = head
            writer.write(canvas)
        for _ in range(empty_frames):
            writer.write(np.full((240, 320, 3), 90, np.uint8))
    writer.release()
    return path


def write_run_config(path: Path, device_id: str, port: int, spool: Path, video: Path, *, refresh_s: float,
                     discovery: bool = True) -> Path:
    """A config file for `emotion-edge run` on a looping face video with MQTT to the test broker, quick to
    reconnect, its state (the detection switch, the retained-topic record) beside the spool."""
    from emotion_edge.device.model.metadata import packaged_model_path

    path.write_text(f"""device_id = "{device_id}"
[camera]
source = "{video}"
loop = true
fps = 30.0
[model]
path = "{packaged_model_path()}"
threads = 1
[tracker]
max_missed = 1
[mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
spool_path = "{spool}"
update_min_interval_s = 0.0
update_refresh_s = {refresh_s}
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[mqtt.homeassistant]
enabled = {"true" if discovery else "false"}
[service]
state_dir = "{spool.parent}"
""")
    return path


def spawn_run(config: Path, log: Path) -> subprocess.Popen:
    """`emotion-edge run --config` as its own process (to be SIGKILLed), stderr to `log`."""
    with log.open("wb") as stderr:  # the child has its own copy of the descriptor; ours closes here
        return subprocess.Popen([sys.executable, "-m", "emotion_edge.main", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=stderr)


class RunningDaemon:
    """The real camera loop on its own thread with the MQTT publisher attached, as `emotion-edge run` wires them
    (daemon/app.py); `source` replaces the configured camera (a frame source the test controls)."""

    def __init__(self, config, source=None):
        from emotion_edge.device.daemon.app import attach_mqtt, build_daemon

        self.camera = source
        self.daemon = build_daemon(config, source=source)
        self.publisher = attach_mqtt(self.daemon)
        self.thread = threading.Thread(target=self.daemon.run, name="test-daemon", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.daemon.stop()
        self.thread.join(10)
        self.publisher.close()
