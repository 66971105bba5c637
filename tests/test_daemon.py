"""The camera loop on replayed frames: readings reach handlers, stats count, stop is prompt, logs are JSON."""

import json
import logging
import threading
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest
from helpers.peers import wait_until
from helpers.photo import astronaut_head

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig
from emotion_edge.device.daemon.app import build_daemon
from emotion_edge.device.daemon.loop import LoopCounters
from emotion_edge.device.logs import JsonFormatter
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.sources import SourceBase, bgr_frame
from emotion_edge.main import main


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    face = astronaut_head()  # head and shoulders
    path = tmp_path_factory.mktemp("video") / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(20):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[90:390, 60 + 6 * i : 360 + 6 * i] = face
        writer.write(canvas)
    writer.release()
    return path


def _config(source: str) -> DaemonConfig:
    # Unpaced: the tests want every frame as fast as it decodes, not at the clip's own rate.
    return DaemonConfig(camera=CameraConfig(source=source, paced=False), model=ModelConfig(path=packaged_model_path(), threads=1))


def test_daemon_runs_a_video_to_its_end_and_reports(face_video):
    readings = []
    daemon = build_daemon(_config(str(face_video)), handlers=[readings.append])
    stats = daemon.run()
    assert stats["frames"] == 20 == len(readings) and stats["dropped_frames"] == 0
    assert {f.track_id for r in readings for f in r.faces} == {1}
    assert stats["stage_ms"]["detect"] > 0 and stats["stage_ms"]["classify"] > 0
    assert stats["model_sha256"] == daemon.classifier.sha256 and stats["source"]["frames"] == 20


def test_dropped_frames_are_counted_from_index_gaps():
    counters = LoopCounters()
    for index in (0, 1, 4, 5, 9):
        counters.count(index)
    assert (counters.frames, counters.dropped) == (5, 5)


class HungCamera(SourceBase):
    """A camera that opens but never delivers: read() waits out its timeout and returns None."""

    name = "hung"

    def open(self):
        pass

    def read(self, timeout):
        time.sleep(timeout)
        return None

    def close(self):
        pass


class NoPreview:
    def attach_mqtt(self, camera):
        pass

    def detach(self, camera):
        pass


def test_a_camera_preview_given_to_the_composition_root_rides_every_camera_the_daemon_opens():
    preview = NoPreview()
    daemon = build_daemon(_config("picamera2"), camera_preview=preview)
    assert daemon.source._factory().preview is preview  # the factory runs on every (re)open; nothing opened here


def test_stop_is_served_even_when_the_camera_hangs():
    daemon = build_daemon(_config("unused"), source=HungCamera())
    threading.Timer(0.3, daemon.stop).start()
    started = time.monotonic()
    stats = daemon.run()
    assert time.monotonic() - started < 10.0  # the camera never returns: any bound proves stop() was served
    assert stats["frames"] == 0


def test_run_command_prints_final_stats(capsys, face_video):
    assert main(["run", "--source", str(face_video), "--max-frames", "5", "--unpaced"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["frames"] == 5


def test_json_log_lines_carry_extra_fields():
    record = logging.LogRecord("emotion_edge.x", logging.INFO, __file__, 1, "stats", (), None)
    record.fps = 12.5
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "stats" and line["fps"] == 12.5 and line["level"] == "INFO"


def test_a_bad_file_in_an_image_folder_is_skipped_counted_and_logged_once(tmp_path, caplog):
    # Before: on_bad_file="raise" made the reopening source fail on 0.jpg forever: frames 0, failures 5.
    (tmp_path / "0.jpg").write_bytes(b"")
    for i in range(1, 6):
        assert cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((120, 160, 3), 40 * i, np.uint8))
    config = _config(str(tmp_path))
    config = replace(config, camera=replace(config.camera, loop=True))
    daemon = build_daemon(config)
    result: list[dict] = []
    with caplog.at_level(logging.WARNING, logger="emotion_edge"):
        # every good file twice and more: the bad one is met three times
        runner = threading.Thread(target=lambda: result.append(daemon.run(max_frames=12)), daemon=True)
        runner.start()
        try:
            wait_until(lambda: result, "12 frames from the folder", describe=lambda: str(daemon.stats()["source"]))
        finally:
            daemon.stop()
            runner.join(10)
    stats = result[0]
    assert stats["frames"] == 12
    assert stats["source"]["bad_files"] == 1 and stats["source"]["failures"] == 0
    warnings = [r for r in caplog.records if "0.jpg" in r.getMessage()]
    assert len(warnings) == 1 and "skipping" in warnings[0].getMessage()


class PacedCamera(SourceBase):
    """Frames of one picture that each take `wait_s` to come, as a camera's frame interval does."""

    name = "paced"

    def __init__(self, image, wait_s):
        self.image, self.wait_s, self._index = image, wait_s, 0

    def open(self):
        pass

    def read(self, timeout):
        time.sleep(self.wait_s)
        frame = bgr_frame(self.image.copy(), time.monotonic(), self._index, waited_s=self.wait_s)
        self._index += 1
        return frame

    def close(self):
        pass


def test_stats_keep_waiting_for_the_frame_out_of_the_capture_time():
    """At camera rates read() mostly waits; 'capture' is what reading costs, 'wait' the rest."""
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[90:390, 160:460] = astronaut_head()
    daemon = build_daemon(_config("unused"), source=PacedCamera(canvas, wait_s=0.05))
    stats = daemon.run(max_frames=6)
    timer = daemon.pipeline.timer
    assert timer.total_s["wait"] == pytest.approx(6 * 0.05) and stats["stage_ms"]["wait"] == pytest.approx(50.0)
    # The capture is the frame's copy out of read(), far under the 50 ms each read slept.
    assert timer.total_s["capture"] < timer.total_s["wait"] / 5
    assert set(stats["stage_ms"]) == {"wait", "capture", "detect", "classify", "publish"}
