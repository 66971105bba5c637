"""Frame sources: real OpenCV video/image I/O in tmp_path; only the Pi camera (and camera-like
inner sources of ReopeningSource) are faked."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion_edge.device.sources import (
    Backoff,
    Frame,
    FrameSource,
    ImageSource,
    OpenCVSource,
    PiCameraConfig,
    PiCameraSource,
    ReopeningSource,
    SourceBase,
    SourceError,
    SourceExhausted,
    SourceOptions,
    bgr_frame,
    lores_size_for,
    open_source,
    redact_uri,
)

W, H = 64, 48
N_FRAMES = 12


def _video_frame(i: int) -> np.ndarray:
    """Frame i: a flat level that grows with i, so decoded frames can be told apart despite MJPG loss."""
    image = np.empty((H, W, 3), np.uint8)
    image[:] = (10 + 20 * i, 5 + 10 * i, 200 - 15 * i)
    return image


@pytest.fixture
def video(tmp_path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert writer.isOpened()
    for i in range(N_FRAMES):
        writer.write(_video_frame(i))
    writer.release()
    return path


class FakeTime:
    """A clock whose sleep() advances it, recording each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def _assert_consistent(frame: Frame) -> None:
    assert frame.image.dtype == np.uint8 and frame.image.ndim == 3 and frame.image.shape[2] == 3
    np.testing.assert_array_equal(frame.gray, cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY))


# --------------------------------------------------------------------------- OpenCVSource


def test_video_file_frames_then_exhausted(video):
    frames = []
    with OpenCVSource(str(video)) as source:
        assert source.kind == "file" and source.threaded is False
        for _ in range(N_FRAMES):
            frame = source.read(1.0)
            assert frame is not None
            frames.append(frame)
        with pytest.raises(SourceExhausted, match="12 frame"):
            source.read(1.0)
    assert [f.index for f in frames] == list(range(N_FRAMES))
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))
    for i, frame in enumerate(frames):
        assert frame.image.shape == (H, W, 3)
        _assert_consistent(frame)
        # MJPG is lossy, but flat frames come back within a few levels.
        assert np.abs(frame.image.astype(int) - _video_frame(i).astype(int)).mean() < 4


def test_video_file_loops(video):
    with OpenCVSource(video.as_posix(), loop=True) as source:
        frames = [source.read(1.0) for _ in range(2 * N_FRAMES + 3)]
    assert [f.index for f in frames] == list(range(2 * N_FRAMES + 3))
    for i in range(N_FRAMES + 3):
        np.testing.assert_array_equal(frames[i].image, frames[i + N_FRAMES].image)


def test_video_file_fps_paces_without_exceeding_timeout(video):
    fake = FakeTime()
    with OpenCVSource(str(video), fps=10, clock=fake.clock, sleep=fake.sleep) as source:
        assert source.read(1.0) is not None
        assert source.read(0.04) is None  # next frame due at 0.1 s: give up after the timeout
        assert source.read(1.0).index == 1
        assert source.read(1.0).index == 2
    assert fake.sleeps == [0.04, 0.06, 0.1]


def test_threaded_reader_delivers_newest_frames_then_fails(video):
    source = OpenCVSource(str(video), threaded=True)
    frames = []
    source.open()
    try:
        deadline = time.monotonic() + 10
        with pytest.raises(SourceError, match="no frame"):
            while time.monotonic() < deadline:
                frame = source.read(1.0)
                if frame is not None:
                    frames.append(frame)
    finally:
        source.close()
    assert 1 <= len(frames) <= N_FRAMES
    indices = [f.index for f in frames]
    # Capture numbers: increasing, with gaps where frames were overwritten before being taken.
    assert indices == sorted(set(indices)) and indices[-1] < N_FRAMES
    for frame in frames:
        _assert_consistent(frame)
    assert not source.is_open


def test_opencv_open_errors(tmp_path):
    with pytest.raises(SourceError, match="no such video file"):
        OpenCVSource(str(tmp_path / "missing.mp4")).open()
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="cannot open file"):
        OpenCVSource(str(broken)).open()
    with pytest.raises(SourceError, match="before open"):
        OpenCVSource(str(broken)).read(0.1)


def test_stream_names_hide_passwords():
    source = OpenCVSource("rtsp://admin:hunter2@10.0.0.5:554/stream1")
    assert source.kind == "stream" and source.threaded is True
    assert "hunter2" not in source.name and source.name == "rtsp://admin:***@10.0.0.5:554/stream1"
    assert redact_uri("http://cam.local/mjpg") == "http://cam.local/mjpg"
    assert redact_uri("rtsp://u:p@[fe80::1]:8554/x") == "rtsp://u:***@[fe80::1]:8554/x"


def test_bgr_frame_normalises_gray_and_bgra():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    frame = bgr_frame(gray, 1.5, 7)
    assert frame.image.shape == (3, 4, 3) and frame.index == 7 and frame.timestamp == 1.5
    np.testing.assert_array_equal(frame.gray, gray)
    bgra = np.dstack([_video_frame(3), np.full((H, W), 255, np.uint8)])
    frame = bgr_frame(bgra, 0.0, 0)
    np.testing.assert_array_equal(frame.image, _video_frame(3))
    _assert_consistent(frame)
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        Frame(image=np.zeros((4, 4), np.uint8), gray=np.zeros((4, 4), np.uint8), timestamp=0.0, index=0)


# --------------------------------------------------------------------------- ImageSource


def _write_png(path: Path, level: int) -> np.ndarray:
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :, 0] = level
    image[:, :, 2] = 255 - level
    image[5:10, 5:10] = (0, 255, 0)
    assert cv2.imwrite(str(path), image)
    return image


def test_image_folder_in_natural_order(tmp_path):
    levels = {"f10.png": 30, "f2.png": 20, "f1.png": 10}
    expected = {name: _write_png(tmp_path / name, level) for name, level in levels.items()}
    (tmp_path / "notes.txt").write_text("not an image, ignored in a folder")
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    with ImageSource(tmp_path) as source:
        assert [p.name for p in source.files] == ["f1.png", "f2.png", "f10.png"]
        frames = [source.read(0.1) for _ in range(3)]
        with pytest.raises(SourceExhausted):
            source.read(0.1)
    for frame, name in zip(frames, ["f1.png", "f2.png", "f10.png"]):
        np.testing.assert_array_equal(frame.image, expected[name])  # PNG is lossless
        _assert_consistent(frame)
    assert [f.index for f in frames] == [0, 1, 2]


def test_image_list_loops_and_paces(tmp_path):
    a = _write_png(tmp_path / "a.png", 50)
    b = _write_png(tmp_path / "b.png", 150)
    fake = FakeTime()
    files = [tmp_path / "a.png", str(tmp_path / "b.png")]
    with ImageSource(files, loop=True, fps=4, clock=fake.clock, sleep=fake.sleep) as source:
        frames = [source.read(1.0) for _ in range(5)]
    for frame, image in zip(frames, [a, b, a, b, a]):
        np.testing.assert_array_equal(frame.image, image)
    assert fake.sleeps == [0.25] * 4
    assert [f.timestamp for f in frames] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_bad_image_raises_naming_the_file(tmp_path):
    _write_png(tmp_path / "a.png", 10)
    (tmp_path / "b.png").write_text("this is text, not a PNG")
    with ImageSource(tmp_path) as source:
        assert source.read(0.1) is not None
        with pytest.raises(SourceError, match=r"b\.png: not a decodable image"):
            source.read(0.1)
    with ImageSource([tmp_path / "missing.jpg"]) as source:
        with pytest.raises(SourceError, match=r"missing\.jpg: cannot read"):
            source.read(0.1)


def test_bad_image_skipped_with_warning(tmp_path, caplog):
    good = _write_png(tmp_path / "a.png", 10)
    (tmp_path / "b.png").write_text("garbage")
    with caplog.at_level(logging.WARNING, logger="emotion_edge.device.sources"):
        with ImageSource(tmp_path, loop=True, on_bad_file="skip") as source:
            frames = [source.read(0.1) for _ in range(3)]
    for frame in frames:
        np.testing.assert_array_equal(frame.image, good)
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "bad_image"]
    assert len(warnings) == 1 and warnings[0].file.endswith("b.png")  # warned once, not every loop


def test_only_bad_images_fail_even_when_skipping(tmp_path):
    (tmp_path / "x.png").write_text("garbage")
    with ImageSource(tmp_path, loop=True, on_bad_file="skip") as source:
        with pytest.raises(SourceError, match="none of the 1 file"):
            source.read(0.1)


def test_empty_folder_fails_to_open(tmp_path):
    with pytest.raises(SourceError, match="no image files"):
        ImageSource(tmp_path).open()


# --------------------------------------------------------------------------- PiCameraSource


class FakeRequest:
    def __init__(self, main: np.ndarray, lores: np.ndarray, fail: bool = False) -> None:
        self.main, self.lores, self.fail = main, lores, fail
        self.released = False

    def make_array(self, stream: str) -> np.ndarray:
        if self.fail:
            raise RuntimeError("buffer mapping failed")
        return {"main": self.main, "lores": self.lores}[stream].copy()

    def release(self) -> None:
        self.released = True


class FakeJob:
    def __init__(self) -> None:
        self.future: Future = Future()


class FakePicamera2:
    """Mimics the Picamera2 calls PiCameraSource makes; jobs complete at once unless `hung`."""

    def __init__(self, main_size=(320, 240), lores_size=(160, 120), hung=False) -> None:
        rng = np.random.default_rng(0)
        (mw, mh), (lw, lh) = main_size, lores_size
        self.main = rng.integers(0, 256, (mh, mw, 3), dtype=np.uint8)
        self.y = rng.integers(0, 256, (lh, lw), dtype=np.uint8)
        # YUV420 as picamera2 returns it: Y rows, then U and V rows; columns padded to the stride.
        self.yuv = np.full((lh * 3 // 2, lw + 32), 77, np.uint8)
        self.yuv[:lh, :lw] = self.y
        self.yuv[lh:, :lw] = 128
        self.hung = hung
        self.fail_wait: Exception | None = None
        self.fail_arrays = False
        self.jobs: list[FakeJob] = []
        self.requests: list[FakeRequest] = []
        self.calls: list[str] = []
        self.config_kwargs: dict | None = None

    def create_video_configuration(self, **kwargs):
        self.config_kwargs = kwargs
        return {"video": kwargs}

    def configure(self, config) -> None:
        self.calls.append("configure")

    def start(self) -> None:
        self.calls.append("start")

    def capture_request(self, wait=None):
        assert wait is False, "must use the asynchronous form so the wait can be bounded"
        job = FakeJob()
        self.jobs.append(job)
        if not self.hung:
            self.complete(job)
        return job

    def complete(self, job: FakeJob) -> FakeRequest:
        request = FakeRequest(self.main, self.yuv, fail=self.fail_arrays)
        self.requests.append(request)
        job.future.set_result(request)
        return request

    def wait(self, job: FakeJob, timeout=None):
        if self.fail_wait is not None:
            raise self.fail_wait
        return job.future.result(timeout=timeout)  # real blocking with a real timeout

    def cancel_all_and_flush(self) -> None:
        self.calls.append("cancel_all_and_flush")

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


SMALL = PiCameraConfig(main_size=(320, 240), lores_size=(160, 120), fps=15)


def test_picamera_y_plane_is_gray_and_request_released():
    fake = FakePicamera2()
    with PiCameraSource(SMALL, camera_factory=lambda: fake) as source:
        frames = [source.read(0.5), source.read(0.5)]
    assert fake.config_kwargs == {
        "main": {"size": (320, 240), "format": "RGB888"},
        "lores": {"size": (160, 120), "format": "YUV420"},
        "controls": {"FrameRate": 15.0},
    }
    assert fake.calls == ["configure", "start", "stop", "close"]
    assert [f.index for f in frames] == [0, 1]
    for frame in frames:
        np.testing.assert_array_equal(frame.gray, fake.y)  # no stride padding, no chroma rows
        assert frame.gray.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(frame.image, fake.main)
        assert frame.gray_to_image_scale == (2.0, 2.0)
    assert len(fake.requests) == 2 and all(r.released for r in fake.requests)


def test_picamera_hung_camera_wait_is_bounded_and_job_reused():
    fake = FakePicamera2(hung=True)
    source = PiCameraSource(SMALL, camera_factory=lambda: fake)
    source.open()
    started = time.monotonic()
    assert source.read(0.05) is None
    assert source.read(0.05) is None
    assert time.monotonic() - started < 5.0  # bounded (a hung camera would block forever), with room for a busy CI
    assert len(fake.jobs) == 1  # the timed-out job is waited on again, not abandoned
    request = fake.complete(fake.jobs[0])
    frame = source.read(0.05)
    assert frame is not None and request.released
    np.testing.assert_array_equal(frame.gray, fake.y)
    assert source.read(0.05) is None and len(fake.jobs) == 2
    source.close()
    assert fake.calls[-3:] == ["cancel_all_and_flush", "stop", "close"]


def test_picamera_hung_camera_does_not_block_a_thread_forever():
    # The same bound holds when the wait really blocks in another thread's future.
    fake = FakePicamera2(hung=True)
    results = []
    with PiCameraSource(SMALL, camera_factory=lambda: fake) as source:
        worker = threading.Thread(target=lambda: results.append(source.read(0.2)))
        worker.start()
        worker.join(2.0)
        assert not worker.is_alive() and results == [None]


def test_picamera_failures_raise_source_error_and_release():
    fake = FakePicamera2()
    fake.fail_arrays = True
    with PiCameraSource(SMALL, camera_factory=lambda: fake) as source:
        with pytest.raises(SourceError, match="cannot read camera buffers"):
            source.read(0.5)
        assert fake.requests[-1].released
        fake.fail_wait = RuntimeError("camera dequeue timeout")
        with pytest.raises(SourceError, match="camera dequeue timeout"):
            source.read(0.5)


def test_picamera_open_failures():
    def absent():
        raise RuntimeError("Camera __init__ sequence did not complete.")

    with pytest.raises(SourceError, match="cannot open camera: Camera __init__"):
        PiCameraSource(SMALL, camera_factory=absent).open()

    fake = FakePicamera2()
    fake.start = lambda: (_ for _ in ()).throw(RuntimeError("busy"))
    with pytest.raises(SourceError, match="cannot start camera: busy"):
        PiCameraSource(SMALL, camera_factory=lambda: fake).open()
    assert fake.calls == ["configure", "close"]


def test_picamera_without_picamera2_installed(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "picamera2", None)  # makes the import fail
    with pytest.raises(SourceError, match="python3-picamera2"):
        PiCameraSource().open()


def test_picamera_config_rejects_stretched_lores():
    with pytest.raises(ValueError, match="aspect ratio"):
        PiCameraConfig(main_size=(1280, 720), lores_size=(320, 240))
    with pytest.raises(ValueError, match="larger than main"):
        PiCameraConfig(main_size=(320, 240), lores_size=(640, 480))
    assert lores_size_for((1280, 720), 640) == (640, 360)
    assert lores_size_for((640, 480), 320) == (320, 240)
    assert lores_size_for((640, 480), 1000) == (640, 480)


# --------------------------------------------------------------------------- ReopeningSource


class ScriptedSource(SourceBase):
    """A camera stand-in: fails to open, delivers frames, raises, or stalls as told."""

    def __init__(self, fake: FakeTime, open_error: Exception | None = None, frames: int = 10**6, then: str = "stall") -> None:
        self.name = "scripted"
        self.fake = fake
        self.open_error = open_error
        self.frames_left = frames
        self.then = then
        self.opened = self.closed = False

    def open(self) -> None:
        if self.open_error is not None:
            raise self.open_error
        self.opened = True

    def read(self, timeout: float) -> Frame | None:
        if self.frames_left > 0:
            self.frames_left -= 1
            return bgr_frame(np.zeros((4, 4, 3), np.uint8), self.fake.now, 0)
        if self.then == "raise":
            raise SourceError("device unplugged")
        if self.then == "exhausted":
            raise SourceExhausted("end of file")
        self.fake.sleep(timeout)  # a stall: the whole timeout passes with nothing
        return None

    def close(self) -> None:
        self.closed = True


def _factory(fake: FakeTime, script: list[ScriptedSource]):
    made: list[tuple[float, ScriptedSource]] = []

    def factory() -> ScriptedSource:
        source = script.pop(0)
        made.append((fake.now, source))
        return source

    return factory, made


def test_reopening_backs_off_1_then_2_after_two_open_failures(caplog):
    fake = FakeTime()
    script = [
        ScriptedSource(fake, open_error=SourceError("no camera")),
        ScriptedSource(fake, open_error=OSError("busy")),
        ScriptedSource(fake),
    ]
    factory, made = _factory(fake, script)
    source = ReopeningSource(factory, Backoff(initial=1, max_delay=30, factor=2), clock=fake.clock, sleep=fake.sleep)
    with caplog.at_level(logging.WARNING, logger="emotion_edge.device.sources"):
        source.open()  # never raises on a transient failure
        assert source.read(10) is None
        assert source.read(10) is None  # reopened now; frames come next
    frames = [source.read(10) for _ in range(3)]
    assert fake.sleeps == [1.0, 2.0]
    assert [t for t, _ in made] == [0.0, 1.0, 3.0]
    assert [f.index for f in frames] == [0, 1, 2]
    stats = source.stats
    assert (stats.frames, stats.failures, stats.reopens, stats.stalls) == (3, 2, 1, 0)
    assert stats.last_error == "open: OSError: busy"
    failures = [r for r in caplog.records if getattr(r, "event", None) == "source_failure"]
    assert [(r.stage, r.retry_in_s) for r in failures] == [("open", 1.0), ("open", 2.0)]
    assert failures[0].source == "source" and "no camera" in failures[0].error


def test_reopening_after_read_failure_resets_backoff_and_keeps_indices():
    fake = FakeTime()
    first = ScriptedSource(fake, frames=2, then="raise")
    second = ScriptedSource(fake)
    factory, made = _factory(fake, [ScriptedSource(fake, open_error=SourceError("not yet")), first, second])
    with ReopeningSource(factory, Backoff(initial=1, factor=2), clock=fake.clock, sleep=fake.sleep) as source:
        assert source.read(5) is None  # 1 s backoff, then `first` opens
        got = [source.read(5) for _ in range(6)]
    assert [f.index if f is not None else None for f in got] == [0, 1, None, None, 2, 3]
    assert first.closed and second.closed
    # Frames in between reset the backoff: the read failure waits 1 s again, not 2 s.
    assert fake.sleeps == [1.0, 1.0]
    assert source.stats.failures == 2 and source.stats.reopens == 2
    assert source.stats.last_error == "read: SourceError: device unplugged"


def test_reopening_detects_a_stall_and_reopens():
    fake = FakeTime()
    stalling = ScriptedSource(fake, frames=1, then="stall")
    fresh = ScriptedSource(fake)
    factory, made = _factory(fake, [stalling, fresh])
    source = ReopeningSource(factory, Backoff(initial=1), stall_timeout=5, clock=fake.clock, sleep=fake.sleep)
    source.open()
    assert source.read(1) is not None
    results = [source.read(1) for _ in range(5)]  # 5 s of nothing
    assert results == [None] * 5 and stalling.closed
    assert source.stats.stalls == 1 and source.stats.failures == 0
    assert source.stats.last_error.startswith("stall: no frame for 5.0s")
    assert source.read(1) is None  # waits out the 1 s backoff and reopens
    frame = source.read(1)
    assert frame is not None and frame.index == 1
    assert [t for t, _ in made] == [0.0, 6.0]
    assert source.stats.reopens == 1


def test_reopening_wait_never_exceeds_read_timeout():
    fake = FakeTime()
    factory, made = _factory(fake, [ScriptedSource(fake, open_error=SourceError("gone")) for _ in range(4)])
    source = ReopeningSource(factory, Backoff(initial=8, max_delay=60), clock=fake.clock, sleep=fake.sleep)
    source.open()
    for _ in range(3):
        assert source.read(0.5) is None
    assert fake.sleeps == [0.5, 0.5, 0.5] and len(made) == 1


def test_reopening_lets_a_finished_file_end():
    fake = FakeTime()
    factory, _ = _factory(fake, [ScriptedSource(fake, frames=1, then="exhausted")])
    with ReopeningSource(factory, clock=fake.clock, sleep=fake.sleep) as source:
        assert source.read(1) is not None
        with pytest.raises(SourceExhausted):
            source.read(1)


def test_reopening_recovers_a_real_source_when_its_folder_appears(tmp_path):
    folder = tmp_path / "frames"
    fake = FakeTime()
    source = ReopeningSource(lambda: open_source(str(folder)), clock=fake.clock, sleep=fake.sleep)
    source.open()
    assert "no such file" in source.stats.last_error
    folder.mkdir()
    image = _write_png(folder / "0001.png", 99)
    assert source.read(2) is None
    frame = source.read(2)
    np.testing.assert_array_equal(frame.image, image)
    assert source.stats.reopens == 1 and source.stats.failures == 1


def test_backoff_delays():
    backoff = Backoff(initial=1, max_delay=30, factor=2)
    assert [backoff.delay(i) for i in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(10_000) == 30
    jittered = Backoff(initial=10, max_delay=10, jitter=0.2)
    assert jittered.delay(0, 0.0) == pytest.approx(8.0) and jittered.delay(0, 0.999999) == pytest.approx(12.0, abs=1e-4)
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(initial=5, max_delay=1)


# --------------------------------------------------------------------------- open_source


def test_open_source_dispatch(tmp_path, video):
    fake = FakePicamera2(main_size=(640, 480), lores_size=(320, 240))
    pi = open_source("PiCamera", SourceOptions(width=640, height=480, lores_width=320, camera_factory=lambda: fake))
    assert isinstance(pi, PiCameraSource)
    assert pi.config.main_size == (640, 480) and pi.config.lores_size == (320, 240)
    assert isinstance(open_source("picamera2"), PiCameraSource)

    webcam = open_source("0", SourceOptions(width=640, height=480, fps=15))
    assert isinstance(webcam, OpenCVSource) and webcam.uri == 0 and webcam.kind == "webcam"
    assert (webcam.width, webcam.height, webcam.fps) == (640, 480, 15)
    assert open_source("/dev/video2").kind == "webcam"
    assert open_source("rtsp://cam.local:554/s").kind == "stream"
    assert open_source("https://cam.local/video.mjpg").kind == "stream"

    clip = open_source(str(video), SourceOptions(loop=True))
    assert isinstance(clip, OpenCVSource) and clip.kind == "file" and clip.loop
    _write_png(tmp_path / "still.png", 5)
    assert isinstance(open_source(str(tmp_path / "still.png")), ImageSource)
    assert isinstance(open_source(str(tmp_path)), ImageSource)
    for source in (pi, webcam, clip):
        assert isinstance(source, FrameSource)


@pytest.mark.parametrize("spec", ["missing.mp4", "ftp://host/x.mp4", "notes.txt"])
def test_open_source_rejects_unknown_specs(tmp_path, monkeypatch, spec):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError) as err:
        open_source(spec)
    message = str(err.value)
    assert spec.split("/")[0].rstrip(":") in message
    for form in ("picamera2", "/dev/videoN", "rtsp://", "video file", "folder of images"):
        assert form in message


def test_live_reader_numbers_frames_by_capture_so_stale_ones_show_as_gaps():
    """Frames overwritten before the loop took them must be countable as dropped."""
    import threading as _threading

    from emotion_edge.device.sources.opencv import _LatestFrameReader

    class FastCamera:
        def __init__(self):
            self.count = 0
            self.released = _threading.Event()

        def read(self, image=None):  # like cv2.VideoCapture.read: into `image` when one is given
            time.sleep(0.002)
            self.count += 1
            frame = np.full((4, 4, 3), self.count % 256, np.uint8)
            if image is None:
                return True, frame
            image[...] = frame
            return True, image

        def release(self):
            self.released.set()

    camera = FastCamera()
    reader = _LatestFrameReader(camera, "fast")
    reader.start()
    try:
        first = reader.take(1.0)
        time.sleep(0.1)  # the loop is busy; the camera keeps capturing
        second = reader.take(1.0)
    finally:
        reader.stop(1.0)
    assert first is not None and second is not None
    assert second[2] - first[2] > 5  # many captures in between were overwritten, and the numbers show it
    assert camera.released.wait(1.0)


def test_reopening_keeps_the_inner_sources_gaps_so_drops_stay_countable():
    from emotion_edge.device.sources import Backoff, ReopeningSource, SourceBase, bgr_frame

    class Gappy(SourceBase):
        name = "gappy"

        def __init__(self):
            self.indices = iter([0, 3, 4])

        def open(self):
            pass

        def read(self, timeout):
            return bgr_frame(np.zeros((4, 4, 3), np.uint8), time.monotonic(), next(self.indices))

        def close(self):
            pass

    with ReopeningSource(Gappy, Backoff()) as source:
        assert [source.read(0.1).index for _ in range(3)] == [0, 3, 4]


def _read_elapsed(source: FrameSource, count: int) -> float:
    with source:
        started = time.monotonic()
        frames = [source.read(2.0) for _ in range(count)]
        elapsed = time.monotonic() - started
    assert all(frame is not None for frame in frames)
    return elapsed


def test_file_sources_are_paced_like_a_camera_by_default_and_unpaced_on_request(tmp_path, video):
    # The clip states 10 fps: by default 5 frames take 4 periods, as from a camera; a 15 fps demo no longer
    # replays at hundreds of fps and floods the broker with events.
    assert _read_elapsed(open_source(str(video)), 5) >= 0.38
    assert _read_elapsed(open_source(str(video), SourceOptions(fps=20)), 5) >= 0.18  # fps overrides the file's
    # Unpaced (`[camera] paced = false`, `run --unpaced`): as fast as read, fps ignored.
    assert _read_elapsed(open_source(str(video), SourceOptions(paced=False, fps=1)), 5) < 0.3
    folder = tmp_path / "stills"
    folder.mkdir()
    for i in range(4):
        _write_png(folder / f"{i}.png", 10 * i)
    assert _read_elapsed(open_source(str(folder)), 4) >= 0.18  # stills: 15 fps, a camera's usual rate
    assert _read_elapsed(open_source(str(folder), SourceOptions(paced=False)), 4) < 0.15


# --------------------------------------------------------------------------- reused frame buffers


def test_buffer_pool_hands_an_array_out_again_only_once_nothing_holds_it():
    from emotion_edge.device.sources import BufferPool

    pool = BufferPool(size=2)
    first = pool.take((4, 6, 3))
    second = pool.take((4, 6, 3))
    assert first is not second and pool.allocated == 2
    view = first[1:3]  # a view holds its base: first is still in use
    del first
    third = pool.take((4, 6, 3))
    assert not np.shares_memory(third, view) and pool.allocated == 3  # pool full and busy: a fresh, unpooled one
    del view
    again = pool.take((4, 6, 3))
    assert pool.allocated == 3 and again.shape == (4, 6, 3)  # the first array, free now, came back
    assert pool.take((2, 2)).shape == (2, 2)  # another size: a new array, the old ones are let go


def test_video_frames_reuse_buffers_yet_a_held_frame_is_never_overwritten(video):
    """Frames go out in recycled arrays; one the loop (or a preview) still holds keeps its pixels."""
    expected = []
    capture = cv2.VideoCapture(str(video))
    for _ in range(N_FRAMES):
        expected.append(capture.read()[1])
    capture.release()
    with OpenCVSource(str(video)) as source:
        held = source.read(1.0)
        frames_seen = 0
        for i in range(1, N_FRAMES):
            frame = source.read(1.0)  # each frame dropped before the next read, as the loop does
            np.testing.assert_array_equal(frame.image, expected[i])
            _assert_consistent(frame)
            frames_seen += 1
            del frame
        np.testing.assert_array_equal(held.image, expected[0])  # untouched by eleven later decodes
        _assert_consistent(held)
        # The held frame, the one just dropped and one being decoded: a handful of arrays, not one per frame.
        assert source._image_pool.allocated <= 3 and source._gray_pool.allocated <= 3


def test_pacing_wait_is_reported_apart_from_the_frame(video):
    fake = FakeTime()
    with OpenCVSource(str(video), fps=10, clock=fake.clock, sleep=fake.sleep) as source:
        assert source.read(1.0).waited_s == 0.0  # the first frame is due at once
        fake.now += 0.03  # the loop worked 30 ms on it
        assert source.read(1.0).waited_s == pytest.approx(0.07)


def test_picamera_frames_carry_the_lores_colour_planes_without_the_stride_padding():
    """U and V follow the Y rows at half the stride; the frame holds them cropped to half the lores size."""
    fake = FakePicamera2()
    lw, lh = SMALL.lores_size
    stride = fake.yuv.shape[1]
    rng = np.random.default_rng(1)
    u, v = (rng.integers(0, 256, (lh // 2, lw // 2), dtype=np.uint8) for _ in range(2))
    padded = np.full((2, lh // 2, stride // 2), 99, np.uint8)  # 99: the stride's padding, never a pixel
    padded[0, :, : lw // 2], padded[1, :, : lw // 2] = u, v
    fake.yuv[lh:] = padded.reshape(lh // 2, stride)  # U's rows, then V's, two to a buffer row
    with PiCameraSource(SMALL, camera_factory=lambda: fake) as source:
        frame = source.read(0.5)
    np.testing.assert_array_equal(frame.chroma[0], u)
    np.testing.assert_array_equal(frame.chroma[1], v)
    np.testing.assert_array_equal(frame.gray, fake.y)


def test_frame_rejects_colour_planes_of_the_wrong_size():
    image, gray = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"Frame.chroma must be two uint8 \(4, 4\) planes"):
        Frame(image=image, gray=gray, timestamp=0.0, index=0, chroma=(np.zeros((8, 8), np.uint8),) * 2)
