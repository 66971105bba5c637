"""Frame sources: Pi camera, USB webcams, RTSP/HTTP streams, video files and image folders.

Every source satisfies one small interface, `FrameSource`: ``open()``, ``read(timeout)``,
``close()`` and a ``name``; all sources here are context managers (``with source:`` opens
and closes). ``read`` returns a `Frame`, or None when no frame arrived within ``timeout``
seconds, and raises `SourceError` when the source has failed (`SourceExhausted` when a
file or image list has simply ended). `ReopeningSource` wraps any source and turns
transient failures and stalls into reopen-with-backoff, so the main loop never dies
because a cable wobbled.

Use `open_source(spec)` to turn a command-line string into a source.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import threading
import time
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from emotion_edge.device.contract import to_gray

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], None]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"})
VIDEO_SUFFIXES = frozenset(
    {".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".h264", ".mjpeg", ".mjpg"}
)
STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp"})
PICAMERA_SPECS = frozenset({"picamera2", "picamera"})
# Python 3.10's concurrent.futures.TimeoutError is not the builtin one (3.11 merged them).
_WAIT_TIMEOUTS = (TimeoutError, FutureTimeoutError)


class SourceError(RuntimeError):
    """A source cannot deliver frames (cannot open, device gone, undecodable file, ...)."""


class SourceExhausted(SourceError):
    """A finite source (video file, image list) has delivered its last frame and does not loop."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured frame.

    image: uint8 HxWx3 in **BGR** order (OpenCV's convention), for preview and annotation;
        consumers may draw on it.
    gray: uint8 2-D image for face detection and classification. It shows the same field of
        view as ``image`` but may be smaller (the Pi camera's low-resolution stream), so map
        boxes from gray to image coordinates with `gray_to_image_scale`.
    timestamp: time.monotonic() seconds when the frame was captured (or, for files, read).
    index: frame number from the source, counting from 0 at open().
    """

    image: np.ndarray
    gray: np.ndarray
    timestamp: float
    index: int

    def __post_init__(self) -> None:
        # Cheap checks that catch a misconfigured camera format here rather than deep in the detector.
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"Frame.image must be uint8 HxWx3, got {self.image.dtype} {self.image.shape}")
        if self.gray.dtype != np.uint8 or self.gray.ndim != 2:
            raise ValueError(f"Frame.gray must be uint8 HxW, got {self.gray.dtype} {self.gray.shape}")

    @property
    def gray_to_image_scale(self) -> tuple[float, float]:
        """(sx, sy) that multiply gray-image x/y coordinates into image coordinates."""
        return (self.image.shape[1] / self.gray.shape[1], self.image.shape[0] / self.gray.shape[0])


@runtime_checkable
class FrameSource(Protocol):
    """What the sensor loop needs from a camera-like thing."""

    name: str

    def open(self) -> None: ...

    def read(self, timeout: float) -> Frame | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc_info: object) -> None: ...


class SourceBase:
    """Context-manager plumbing shared by the sources: ``with source:`` opens and closes."""

    name: str = "source"
    _index: int = 0  # number of the next frame; open() resets it

    def open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def read(self, timeout: float) -> Frame | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> SourceBase:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _emit(self, image: np.ndarray, timestamp: float) -> Frame:
        """A BGR image as the next numbered frame."""
        frame = bgr_frame(image, timestamp, self._index)
        self._index += 1
        return frame


def bgr_frame(image: np.ndarray, timestamp: float, index: int) -> Frame:
    """A Frame from an OpenCV image (gray, BGR or BGRA)."""
    if image.ndim == 2:
        gray = image
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    else:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        gray = to_gray(image)
    return Frame(image=image, gray=gray, timestamp=timestamp, index=index)


class _Pacer:
    """Holds frames back to a fixed rate (fps) without ever blocking longer than a read's timeout."""

    def __init__(self, fps: float | None, clock: Clock, sleep: Sleep) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._period = 1.0 / fps if fps else 0.0
        self._clock = clock
        self._sleep = sleep
        self._due: float | None = None

    def reset(self) -> None:
        self._due = None

    def wait(self, timeout: float) -> bool:
        """Sleep until the next frame is due; False if that is more than ``timeout`` away."""
        if not self._period or self._due is None:
            return True
        delay = self._due - self._clock()
        if delay > timeout:
            self._sleep(max(timeout, 0.0))
            return False
        if delay > 0:
            self._sleep(delay)
        return True

    def mark(self) -> None:
        """A frame went out now; schedule the next one a period after the previous slot."""
        if not self._period:
            return
        now = self._clock()
        # A fixed schedule avoids drift; after a long pause restart it rather than bursting to catch up.
        on_schedule = self._due is not None and self._due >= now - self._period
        self._due = (self._due if on_schedule else now) + self._period


# --------------------------------------------------------------------------- OpenCV


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


def _uri_kind(uri: str | int) -> Literal["webcam", "stream", "file"]:
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
        self._thread = threading.Thread(target=self._run, name=f"frames:{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ok, image = self._capture.read()
                if self._stop.is_set():
                    break
                if not ok or image is None:
                    self._publish_error(SourceError(f"{self._name}: capture returned no frame (device gone or stream ended)"))
                    break
                with self._ready:
                    self._latest = (image, time.monotonic(), self._captured)
                    self._captured += 1
                    self._ready.notify_all()
        except Exception as exc:  # cv2.error and friends: report them to the reader instead of dying silently
            self._publish_error(SourceError(f"{self._name}: capture failed: {exc}"))
        finally:
            self._capture.release()

    def _publish_error(self, error: SourceError) -> None:
        with self._ready:
            self._error = error
            self._ready.notify_all()

    def take(self, timeout: float) -> tuple[np.ndarray, float, int] | None:
        """The newest (image, timestamp, capture number), or None when none came within `timeout`."""
        with self._ready:
            self._ready.wait_for(lambda: self._latest is not None or self._error is not None, max(timeout, 0.0))
            latest, self._latest = self._latest, None
            if latest is not None:
                return latest
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


class OpenCVSource(SourceBase):
    """cv2.VideoCapture: USB webcams (index or /dev/videoN), RTSP/HTTP streams and video files.

    Live sources (webcams, streams) are read on a background thread that keeps only the
    newest frame, so read(timeout) is bounded and never returns a stale buffered frame.
    Files are read synchronously so every frame is delivered; at the end they either
    loop or raise SourceExhausted.

    width/height/fps: requested capture format for webcams (the driver may pick the nearest;
    the negotiated values are logged). For files, fps paces playback (None = as fast as read);
    for streams it is ignored, the sender decides.
    """

    def __init__(
        self,
        uri: str | int,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        loop: bool = False,
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
        self.kind = _uri_kind(uri)
        self.name = f"webcam:{uri}" if isinstance(uri, int) else redact_uri(uri)
        self.width, self.height, self.fps = width, height, fps
        self.loop = loop
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

    @property
    def is_open(self) -> bool:
        return self._capture is not None or self._reader is not None

    def open(self) -> None:
        if self.is_open:
            return
        capture = self._open_capture()
        self._index = 0
        self._pacer.reset()
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
            image, timestamp, captured = latest
            # Index by capture number, so frames overwritten before anyone took them show as gaps (dropped).
            self._index = captured
            return self._emit(image, timestamp)
        if self._capture is None:
            raise SourceError(f"{self.name}: read() before open()")
        if not self._pacer.wait(timeout):
            return None
        image = self._read_file_frame()
        self._pacer.mark()
        return self._emit(image, self._clock())

    def _read_file_frame(self) -> np.ndarray:
        assert self._capture is not None
        ok, image = self._capture.read()
        if ok and image is not None:
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


# --------------------------------------------------------------------------- images


def _natural_key(path: Path) -> list[int | str]:
    # frame2.png before frame10.png, as a person numbering frames expects.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, hidden files skipped), in natural order."""
    files = [
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(files, key=_natural_key)


def load_image(path: Path) -> np.ndarray:
    """A BGR uint8 image from disk; SourceError naming the file when it is missing or not an image."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read image file ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"{path}: not a decodable image file")
    return image


class ImageSource(SourceBase):
    """Still images as a frame sequence: a folder (image files in natural order) or a list of files.

    A folder contributes only files with an image suffix; files given explicitly are all used.
    on_bad_file: "raise" stops with a SourceError naming the file; "skip" logs a warning once
    and moves on. fps paces delivery (None = as fast as read() is called).
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        loop: bool = False,
        fps: float | None = None,
        on_bad_file: Literal["raise", "skip"] = "raise",
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if on_bad_file not in ("raise", "skip"):
            raise ValueError(f"on_bad_file must be 'raise' or 'skip', got {on_bad_file!r}")
        if isinstance(paths, (str, Path)):
            self._folder: Path | None = Path(paths) if Path(paths).is_dir() else None
            self._given = [] if self._folder else [Path(paths)]
            self.name = str(paths)
        else:
            self._folder = None
            self._given = [Path(p) for p in paths]
            self.name = f"{len(self._given)} image(s)" if len(self._given) != 1 else str(self._given[0])
        self.loop = loop
        self.on_bad_file = on_bad_file
        self._clock = clock
        self._pacer = _Pacer(fps, clock, sleep)
        self._files: list[Path] | None = None
        self._bad: set[Path] = set()
        self._position = 0
        self._index = 0

    @property
    def files(self) -> list[Path]:
        """The files this source will show (resolved at open())."""
        return list(self._files or [])

    @property
    def bad_files(self) -> list[Path]:
        """The files skipped as unreadable so far (on_bad_file="skip")."""
        return sorted(self._bad)

    def open(self) -> None:
        files = list_images(self._folder) if self._folder is not None else list(self._given)
        if not files:
            where = f"folder {self._folder}" if self._folder is not None else "the given list"
            raise SourceError(f"no image files in {where} (accepted: {', '.join(sorted(IMAGE_SUFFIXES))})")
        self._files = files
        self._position = 0
        self._index = 0
        self._pacer.reset()

    def read(self, timeout: float) -> Frame | None:
        if self._files is None:
            raise SourceError(f"{self.name}: read() before open()")
        if not self._pacer.wait(timeout):
            return None
        image = self._next_image()
        self._pacer.mark()
        return self._emit(image, self._clock())

    def _next_image(self) -> np.ndarray:
        assert self._files is not None
        # Bounded so a looping list of only bad files raises instead of spinning forever.
        for _ in range(2 * len(self._files) + 1):
            if self._position >= len(self._files):
                if not self.loop:
                    raise SourceExhausted(f"{self.name}: no more images after {self._index}")
                self._position = 0
            path = self._files[self._position]
            self._position += 1
            if path in self._bad:
                continue
            try:
                return load_image(path)
            except SourceError as exc:
                if self.on_bad_file == "raise":
                    raise
                self._bad.add(path)
                log.warning("skipping %s; the other images go on (counted in stats.source.bad_files)", exc,
                            extra={"source": self.name, "event": "bad_image", "file": str(path)})
        raise SourceError(f"{self.name}: none of the {len(self._files)} file(s) is a readable image")

    def close(self) -> None:
        self._files = None


# --------------------------------------------------------------------------- Pi camera


def _even(value: int) -> int:
    return max(2, int(round(value / 2)) * 2)


def lores_size_for(main_size: tuple[int, int], lores_width: int) -> tuple[int, int]:
    """A lores size with the main stream's aspect ratio, no wider than main, even dimensions."""
    width = _even(min(lores_width, main_size[0]))
    return (width, _even(main_size[1] * width / main_size[0]))


@dataclass(frozen=True)
class PiCameraConfig:
    """Picamera2 streams: ``main`` for the preview/annotation, ``lores`` whose Y plane is the gray image.

    lores must have main's aspect ratio: the ISP scales both outputs from one sensor crop, so
    a different ratio stretches faces, which the emotion model never saw in training.
    """

    main_size: tuple[int, int] = (1280, 720)
    lores_size: tuple[int, int] = (640, 360)
    fps: float | None = None
    camera_num: int = 0

    def __post_init__(self) -> None:
        (mw, mh), (lw, lh) = self.main_size, self.lores_size
        if min(mw, mh, lw, lh) <= 0 or lw % 2 or lh % 2:
            raise ValueError(f"camera sizes must be positive and lores even: main {self.main_size}, lores {self.lores_size}")
        if lw > mw or lh > mh:
            raise ValueError(f"lores {self.lores_size} must not be larger than main {self.main_size}")
        if abs((mw / mh) / (lw / lh) - 1.0) > 0.02:
            raise ValueError(
                f"lores {self.lores_size} and main {self.main_size} differ in aspect ratio; "
                f"use e.g. lores {lores_size_for(self.main_size, lw)}"
            )
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")


def _default_picamera2(camera_num: int) -> Any:
    try:
        from picamera2 import Picamera2  # only on a Pi; never import at module load
    except ImportError as exc:
        raise SourceError(
            "picamera2 is not installed: on Raspberry Pi OS run 'sudo apt install python3-picamera2' "
            "and create the venv with --system-site-packages"
        ) from exc
    return Picamera2(camera_num)


class CameraPreview(Protocol):
    """Something shown from the Pi camera itself (the HDMI preview): picamera2 must start it between
    configure() and start(), so PiCameraSource hands it every Picamera2 object it opens."""

    def attach(self, camera: Any) -> None: ...

    def detach(self, camera: Any) -> None: ...


class PiCameraSource(SourceBase):
    """The Raspberry Pi camera via picamera2: BGR preview from ``main``, gray from the ``lores`` Y plane.

    The gray image comes for free: a YUV420 buffer starts with its full-resolution Y (luma)
    plane, so no colour conversion runs on the CPU.

    Waits are bounded with picamera2's asynchronous jobs: ``capture_request(wait=False)``
    returns a job and ``wait(job, timeout)`` gives up after the timeout. A job that timed
    out is kept and waited on again by the next read() rather than abandoned, because an
    abandoned job would still take a request when the camera recovers and that buffer would
    never be released.

    camera_factory: makes the Picamera2 object (tests pass a fake); by default
    ``picamera2.Picamera2(config.camera_num)``, imported only when opening.
    preview: attached to each camera after configure() and before start(), detached before close.
    """

    def __init__(self, config: PiCameraConfig = PiCameraConfig(), camera_factory: Callable[[], Any] | None = None,
                 preview: CameraPreview | None = None) -> None:
        self.config = config
        self.preview = preview
        self.name = f"picamera2:{config.camera_num}"
        self._factory = camera_factory or (lambda: _default_picamera2(config.camera_num))
        self._camera: Any = None
        self._job: Any = None
        self._index = 0

    def open(self) -> None:
        if self._camera is not None:
            return
        try:
            camera = self._factory()
        except SourceError:
            raise
        except Exception as exc:  # picamera2 raises RuntimeError/IndexError when the camera is absent or busy
            raise SourceError(f"{self.name}: cannot open camera: {exc}") from exc
        try:
            camera.configure(self._camera_configuration(camera))
            if self.preview is not None:
                self.preview.attach(camera)
            camera.start()
        except Exception as exc:
            _quietly(camera.close, self.name)
            raise SourceError(f"{self.name}: cannot start camera: {exc}") from exc
        self._camera = camera
        self._job = None
        self._index = 0

    @property
    def camera(self) -> Any:
        """The open Picamera2 object (None while closed), for displays that draw on the camera's own preview."""
        return self._camera

    def _camera_configuration(self, camera: Any) -> Any:
        # RGB888 is stored B,G,R per pixel (DRM fourcc naming), which is what OpenCV calls BGR.
        controls = {"FrameRate": float(self.config.fps)} if self.config.fps else {}
        return camera.create_video_configuration(
            main={"size": tuple(self.config.main_size), "format": "RGB888"},
            lores={"size": tuple(self.config.lores_size), "format": "YUV420"},
            controls=controls,
        )

    def read(self, timeout: float) -> Frame | None:
        camera = self._camera
        if camera is None:
            raise SourceError(f"{self.name}: read() before open()")
        try:
            if self._job is None:
                self._job = camera.capture_request(wait=False)
            request = camera.wait(self._job, timeout=max(timeout, 0.0))
        except _WAIT_TIMEOUTS:
            return None
        except (CancelledError, Exception) as exc:
            self._job = None
            raise SourceError(f"{self.name}: capture failed: {str(exc) or type(exc).__name__}") from exc
        self._job = None
        timestamp = time.monotonic()
        try:
            main = request.make_array("main")
            lores = request.make_array("lores")
        except Exception as exc:
            raise SourceError(f"{self.name}: cannot read camera buffers: {exc}") from exc
        finally:
            request.release()  # the camera has only a few buffers; a leaked one stalls it
        frame = Frame(image=main, gray=self._y_plane(lores), timestamp=timestamp, index=self._index)
        self._index += 1
        return frame

    def _y_plane(self, lores: np.ndarray) -> np.ndarray:
        # YUV420 arrives as (height * 3 / 2, stride): Y rows first, then U and V; the stride may pad columns.
        width, height = self.config.lores_size
        if lores.ndim != 2 or lores.shape[0] < height or lores.shape[1] < width:
            raise SourceError(f"{self.name}: lores buffer {lores.shape} is not YUV420 for {width}x{height}")
        return np.ascontiguousarray(lores[:height, :width])

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        if self._job is not None and hasattr(camera, "cancel_all_and_flush"):
            # Newer picamera2: drop the pending job so it cannot grab a buffer after we leave.
            _quietly(camera.cancel_all_and_flush, self.name)
        self._job = None
        if self.preview is not None:
            _quietly(lambda: self.preview.detach(camera), self.name)
        _quietly(camera.stop, self.name)
        _quietly(camera.close, self.name)


def _quietly(action: Callable[[], Any], name: str) -> None:
    """Run a cleanup step; a failing cleanup must not hide the error that led to it."""
    try:
        action()
    except Exception as exc:
        log.warning("%s: cleanup failed: %s", name, exc, extra={"source": name, "event": "cleanup_failed"})


# --------------------------------------------------------------------------- reopening


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: initial * factor**attempt, capped at max_delay.

    jitter is a fraction: 0.1 spreads each delay uniformly over +-10%, so several sensors
    that lost one RTSP server do not all reconnect in the same instant.
    """

    initial: float = 1.0
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.max_delay < self.initial or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid backoff {self}: need 0 < initial <= max_delay, factor >= 1, 0 <= jitter < 1")

    def delay(self, attempt: int, uniform: float = 0.5) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); ``uniform`` in [0, 1) drives jitter."""
        # Cap the exponent: factor**attempt overflows a float after a long outage.
        base = min(self.max_delay, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 + self.jitter * (2.0 * uniform - 1.0))


@dataclass
class SourceStats:
    """Counters for health reporting.

    frames: frames delivered. failures: open() or read() errors. stalls: times no frame came
    for stall_timeout seconds. reopens: successful opens that followed a failure or stall.
    bad_files: files an image source skipped as unreadable.
    last_error: the most recent failure or stall, as text.
    """

    frames: int = 0
    failures: int = 0
    reopens: int = 0
    stalls: int = 0
    bad_files: int = 0
    last_error: str = ""


class ReopeningSource(SourceBase):
    """Keeps any source alive: on failure or stall it closes it and opens a fresh one with backoff.

    Transient problems never raise: read() returns None while the source is down and
    sleeps at most ``timeout`` per call, so the caller's loop (watchdog pings, MQTT) keeps
    running. Only SourceExhausted (a finite file that ended) and misuse propagate.
    Frame indices are renumbered so they keep increasing across reopens.
    """

    def __init__(
        self,
        factory: Callable[[], FrameSource],
        backoff: Backoff = Backoff(),
        *,
        stall_timeout: float = 10.0,
        name: str = "source",
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        if stall_timeout <= 0:
            raise ValueError(f"stall_timeout must be positive, got {stall_timeout}")
        self.name = name
        self.backoff = backoff
        self.stall_timeout = stall_timeout
        self._factory = factory
        self._clock = clock
        self._sleep = sleep
        self._uniform = uniform
        self._stats = SourceStats()
        self._inner: FrameSource | None = None
        self._active = False
        self._recovering = False
        self._attempt = 0
        self._retry_at = 0.0
        self._last_progress = 0.0
        self._index_base = 0
        self._next_index = 0

    @property
    def stats(self) -> SourceStats:
        """A snapshot, so the caller can publish it without racing later updates."""
        self._count_bad_files()
        return dataclasses.replace(self._stats)

    def _count_bad_files(self) -> None:
        """The open image source's skipped files (kept after it closes, for the final stats)."""
        bad = getattr(self._inner, "bad_files", None)
        if bad is not None:
            self._stats.bad_files = len(bad)

    @property
    def is_connected(self) -> bool:
        return self._inner is not None

    def open(self) -> None:
        self._active = True
        if self._inner is None:
            self._try_open()

    def read(self, timeout: float) -> Frame | None:
        if not self._active:
            raise SourceError(f"{self.name}: read() before open()")
        if self._inner is None:
            self._wait_for_retry(timeout)
            return None
        try:
            frame = self._inner.read(timeout)
        except SourceExhausted:
            raise
        except Exception as exc:
            self._fail("read", f"{type(exc).__name__}: {exc}")
            return None
        now = self._clock()
        if frame is None:
            if now - self._last_progress >= self.stall_timeout:
                self._stats.stalls += 1
                self._fail("stall", f"no frame for {now - self._last_progress:.1f}s")
            return None
        self._last_progress = now
        self._attempt = 0
        # Offset, not renumber: gaps in the inner source's numbering (stale frames it dropped) must survive.
        # (max: still increasing when an inner source restarts its own numbering mid-stream)
        frame = dataclasses.replace(frame, index=max(self._next_index, self._index_base + frame.index))
        self._next_index = frame.index + 1
        self._stats.frames += 1
        return frame

    def _wait_for_retry(self, timeout: float) -> None:
        delay = self._retry_at - self._clock()
        if delay > timeout:
            self._sleep(max(timeout, 0.0))
            return
        if delay > 0:
            self._sleep(delay)
        self._try_open()

    def _try_open(self) -> bool:
        try:
            source = self._factory()
            source.open()
        except SourceExhausted:
            raise
        except Exception as exc:
            self._fail("open", f"{type(exc).__name__}: {exc}")
            return False
        self._inner = source
        self._index_base = self._next_index
        self._last_progress = self._clock()
        if self._recovering:
            self._stats.reopens += 1
            self._recovering = False
            log.info(
                "source %s reopened after %d failure(s)",
                self.name,
                self._attempt,
                extra={"source": self.name, "event": "source_reopened", "reopens": self._stats.reopens},
            )
        return True

    def _fail(self, stage: str, error: str) -> None:
        """Record a failure, drop the inner source and schedule the next open with backoff."""
        if stage != "stall":
            self._stats.failures += 1
        self._stats.last_error = f"{stage}: {error}"
        self._close_inner()
        delay = self.backoff.delay(self._attempt, self._uniform())
        self._attempt += 1
        self._retry_at = self._clock() + delay
        self._recovering = True
        log.warning(
            "source %s %s failed: %s; retrying in %.1fs",
            self.name,
            stage,
            error,
            delay,
            extra={
                "source": self.name,
                "event": "source_failure",
                "stage": stage,
                "error": error,
                "retry_in_s": round(delay, 3),
                "attempt": self._attempt,
                "failures": self._stats.failures,
                "stalls": self._stats.stalls,
            },
        )

    def _close_inner(self) -> None:
        self._count_bad_files()
        inner, self._inner = self._inner, None
        if inner is not None:
            _quietly(inner.close, self.name)

    def close(self) -> None:
        self._active = False
        self._close_inner()


# --------------------------------------------------------------------------- factory


@dataclass(frozen=True)
class SourceOptions:
    """Settings open_source() passes to whichever source the spec selects.

    width/height: requested webcam format, or the Pi camera's main stream size.
    fps: camera frame rate for cameras; playback pacing for video files and images.
    loop: replay video files and image lists instead of ending.
    lores_width: width of the Pi camera's gray stream (height follows main's aspect ratio).
    on_bad_file: what an image source does with an undecodable file.
    camera_factory: makes the Picamera2 object (tests inject a fake).
    camera_preview: the HDMI preview the Pi camera attaches to every camera it opens.
    """

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    loop: bool = False
    lores_width: int = 640
    on_bad_file: Literal["raise", "skip"] = "raise"
    camera_factory: Callable[[], Any] | None = field(default=None, compare=False)
    camera_preview: CameraPreview | None = field(default=None, compare=False)


ACCEPTED_SPECS = (
    "'picamera2' (Raspberry Pi camera), a webcam index like '0' or a /dev/videoN path, "
    "an rtsp://, http:// or https:// URL, a video file ("
    + ", ".join(sorted(VIDEO_SUFFIXES))
    + "), an image file or a folder of images"
)


def open_source(spec: str, options: SourceOptions = SourceOptions()) -> FrameSource:
    """The source a command-line spec names (not yet opened). ValueError for anything unrecognised."""
    text = spec.strip()
    if text.lower() in PICAMERA_SPECS:
        return _picamera_source(options)
    if text.isdigit() or text.startswith("/dev/video"):
        # Device nodes are not checked for existence: a webcam may be plugged in later,
        # and ReopeningSource retries until it appears.
        return _opencv_source(text, options)
    scheme = urlsplit(text).scheme.lower()
    if "://" in text:
        if scheme in STREAM_SCHEMES:
            return _opencv_source(text, options)
        raise ValueError(f"unsupported URL scheme {scheme!r} in {redact_uri(text)!r}; accepted: {ACCEPTED_SPECS}")
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageSource(path, loop=options.loop, fps=options.fps, on_bad_file=options.on_bad_file)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            return ImageSource([path], loop=options.loop, fps=options.fps, on_bad_file=options.on_bad_file)
        if suffix in VIDEO_SUFFIXES:
            return _opencv_source(str(path), options)
        raise ValueError(f"{text!r}: unrecognised file type {suffix or '(no suffix)'!r}; accepted: {ACCEPTED_SPECS}")
    raise ValueError(f"{text!r}: no such file, folder or device; accepted: {ACCEPTED_SPECS}")


def _opencv_source(uri: str, options: SourceOptions) -> OpenCVSource:
    return OpenCVSource(uri, width=options.width, height=options.height, fps=options.fps, loop=options.loop)


def _picamera_source(options: SourceOptions) -> PiCameraSource:
    if (options.width is None) != (options.height is None):
        raise ValueError("the Pi camera needs both width and height, or neither")
    main = (options.width, options.height) if options.width and options.height else PiCameraConfig.main_size
    config = PiCameraConfig(main_size=main, lores_size=lores_size_for(main, options.lores_width), fps=options.fps)
    return PiCameraSource(config, camera_factory=options.camera_factory, preview=options.camera_preview)
