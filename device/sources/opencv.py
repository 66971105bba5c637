"""OpenCV captures: USB webcams, RTSP/HTTP streams and video files, live ones read on their own thread."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from emotion_edge.device.sources.frames import (
    STREAM_SCHEMES,
    BufferPool,
    Clock,
    Frame,
    Sleep,
    SourceBase,
    SourceError,
    SourceExhausted,
    _Pacer,
)

log = logging.getLogger(__name__)


def redact_uri(uri: str) -> str:
    """A URL with its password replaced, fit for logs and source names."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literals lose their brackets in .hostname
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def uri_kind(uri: str | int) -> Literal["webcam", "stream", "file"]:
    """What OpenCV would open: a webcam (an index or /dev/videoN), a network stream (a streaming URL scheme) or
    a file; `open_source` and `OpenCVSource` both decide by this one rule."""
    if isinstance(uri, int) or uri.strip().isdigit() or uri.startswith("/dev/video"):
        return "webcam"
    if urlsplit(uri).scheme.lower() in STREAM_SCHEMES:
        return "stream"
    return "file"


class _LatestFrameReader:
    """Reads a live capture on its own thread and keeps only the newest frame.

    Why a thread: VideoCapture.read() blocks (up to 10 s on a wedged V4L2 device, the FFmpeg
    read timeout on a stalled stream), and RTSP buffers frames inside FFmpeg whatever
    CAP_PROP_BUFFERSIZE says. Reading continuously and overwriting one slot gives both a
    bounded read(timeout) and "newest frame wins". The thread owns the capture and releases
    it itself, because releasing it from another thread while read() runs is unsafe.
    """

    def __init__(self, capture: cv2.VideoCapture, name: str) -> None:
        self._capture = capture
        self._name = name
        self._ready = threading.Condition()
        self._latest: tuple[np.ndarray, float, int] | None = None
        self._captured = 0  # frames read from the device; gaps between taken ones are frames dropped as stale
        self._error: SourceError | None = None
        self._stop = threading.Event()
        self._pool = BufferPool()  # this thread's; frames are decoded into arrays no one holds any more
        self._thread = threading.Thread(target=self._run, name=f"frames:{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            buffer = None
            while not self._stop.is_set():
                ok, image = self._capture.read(buffer)
                buffer = None
                if self._stop.is_set():
                    break
                if not ok or image is None:
                    self._publish_error(SourceError(f"{self._name}: capture returned no frame (device gone or stream ended)"))
                    break
                with self._ready:
                    self._latest = (image, time.monotonic(), self._captured)
                    self._captured += 1
                    self._ready.notify_all()
                buffer = self._pool.take(image.shape, image.dtype)
                del image
        except Exception as exc:  # cv2.error and friends: report them to the reader instead of dying silently
            self._publish_error(SourceError(f"{self._name}: capture failed: {exc}"))
        finally:
            self._capture.release()

    def _publish_error(self, error: SourceError) -> None:
        with self._ready:
            self._error = error
            self._ready.notify_all()

    def take(self, timeout: float) -> tuple[np.ndarray, float, int, float] | None:
        """The newest (image, timestamp, capture number, seconds waited for it), or None when none came within
        `timeout`."""
        started = time.perf_counter()
        with self._ready:
            self._ready.wait_for(lambda: self._latest is not None or self._error is not None, max(timeout, 0.0))
            latest, self._latest = self._latest, None
            if latest is not None:
                return (*latest, time.perf_counter() - started)
            if self._error is not None:
                raise self._error
            return None

    def stop(self, join_timeout: float) -> None:
        self._stop.set()
        self._thread.join(join_timeout)
        if self._thread.is_alive():
            # A read() wedged in the driver; the daemon thread releases the capture when it returns.
            log.warning(
                "capture thread of %s did not stop within %.1fs; abandoning it",
                self._name,
                join_timeout,
                extra={"source": self._name, "event": "capture_thread_stuck"},
            )


FALLBACK_FILE_FPS = 15.0  # a paced video whose container states no (or an absurd) frame rate
MAX_FILE_FPS = 240.0


def file_fps(capture: cv2.VideoCapture, name: str) -> float:
    """A video file's own frame rate, as its container states it; FALLBACK_FILE_FPS where it states none."""
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    if 0 < fps <= MAX_FILE_FPS:
        return fps
    log.warning("%s: the file states no usable frame rate (%g); pacing it at %g fps", name, fps, FALLBACK_FILE_FPS,
                extra={"source": name, "event": "file_fps_unknown"})
    return FALLBACK_FILE_FPS


class OpenCVSource(SourceBase):
    """cv2.VideoCapture: USB webcams (index or /dev/videoN), RTSP/HTTP streams and video files.

    Live sources (webcams, streams) are read on a background thread that keeps only the
    newest frame, so read(timeout) is bounded and never returns a stale buffered frame.
    Files are read synchronously so every frame is delivered; at the end they either
    loop or raise SourceExhausted.

    width/height/fps: requested capture format for webcams (the driver may pick the nearest;
    the negotiated values are logged). For files, fps paces playback; without fps, `paced` (what open_source()
    and the daemon's `[camera] paced` default to) paces it like a camera at the file's own frame rate
    (FALLBACK_FILE_FPS where the container states none); neither: as fast as read() is called. For streams
    fps is ignored, the sender decides.
    """

    def __init__(
        self,
        uri: str | int,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        loop: bool = False,
        paced: bool = False,
        fourcc: str | None = None,
        buffer_size: int = 1,
        threaded: bool | None = None,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if isinstance(uri, str) and uri.strip().isdigit():
            uri = int(uri)
        if fourcc is not None and len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters like 'MJPG', got {fourcc!r}")
        self.uri = uri
        self.kind = uri_kind(uri)
        self.name = f"webcam:{uri}" if isinstance(uri, int) else redact_uri(uri)
        self.width, self.height, self.fps = width, height, fps
        self.loop = loop
        self.paced = paced
        self.fourcc = fourcc
        self.buffer_size = buffer_size
        self.threaded = self.kind != "file" if threaded is None else threaded
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self._clock = clock
        self._pacer = _Pacer(fps if self.kind == "file" else None, clock, sleep)
        self._capture: cv2.VideoCapture | None = None
        self._reader: _LatestFrameReader | None = None
        self._index = 0
        self._image_pool = BufferPool()
        self._frame_format: tuple[tuple[int, ...], np.dtype] | None = None

    @property
    def is_open(self) -> bool:
        return self._capture is not None or self._reader is not None

    def open(self) -> None:
        if self.is_open:
            return
        capture = self._open_capture()
        self._index = 0
        self._pacer.reset()
        if self.kind == "file" and self.paced and not self.fps:
            self._pacer.set_rate(file_fps(capture, self.name))
        if self.threaded:
            self._reader = _LatestFrameReader(capture, self.name)
            self._reader.start()
        else:
            self._capture = capture

    def _open_capture(self) -> cv2.VideoCapture:
        if self.kind == "file" and not Path(str(self.uri)).is_file():
            raise SourceError(f"{self.name}: no such video file")
        if self.kind == "stream":
            # FFmpeg's defaults wait ~30 s on a dead host; these bound open and each read.
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000),
            ]  # fmt: skip
            capture = cv2.VideoCapture(str(self.uri), cv2.CAP_FFMPEG, params)
        else:
            capture = cv2.VideoCapture(self.uri)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.name}: cannot open {self.kind}")
        if self.kind == "webcam":
            self._configure_webcam(capture)
        return capture

    def _configure_webcam(self, capture: cv2.VideoCapture) -> None:
        # V4L2 applies the pixel format before the size, and many webcams only reach 30 fps
        # at 720p in MJPG, hence FOURCC first.
        if self.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        if self.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        # Not every backend honours it; the reader thread keeps frames fresh regardless.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, self.buffer_size)
        log.info(
            "%s opened at %dx%d @ %.1f fps",
            self.name,
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            capture.get(cv2.CAP_PROP_FPS),
            extra={"source": self.name, "event": "source_opened"},
        )

    def read(self, timeout: float) -> Frame | None:
        if self._reader is not None:
            latest = self._reader.take(timeout)
            if latest is None:
                return None
            image, timestamp, captured, waited = latest
            # Index by capture number, so frames overwritten before anyone took them show as gaps (dropped).
            self._index = captured
            return self._emit(image, timestamp, waited)
        if self._capture is None:
            raise SourceError(f"{self.name}: read() before open()")
        if not self._pacer.wait(timeout):
            return None
        image = self._read_file_frame()
        self._pacer.mark()
        return self._emit(image, self._clock(), self._pacer.waited_s)

    def _read_file_frame(self) -> np.ndarray:
        assert self._capture is not None
        # Decoded into a pooled array once the first frame told the size: no frame-sized malloc per frame.
        ok, image = self._capture.read(self._image_pool.take(*self._frame_format) if self._frame_format else None)
        if ok and image is not None:
            self._frame_format = (image.shape, image.dtype)
            return image
        if not self.loop:
            raise SourceExhausted(f"{self.name}: end of video after {self._index} frame(s)")
        # Reopening is more reliable than seeking to frame 0, which some containers ignore.
        self._capture.release()
        self._capture = self._open_capture()
        ok, image = self._capture.read()
        if not ok or image is None:
            raise SourceError(f"{self.name}: video has no readable frames")
        return image


    def close(self, join_timeout: float = 2.0) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop(join_timeout)
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()
