"""The frame model every source emits, the `FrameSource` interface, its shared base and playback pacing."""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import cv2
import numpy as np

from emotion_edge.device.contract import to_gray
from emotion_edge.device.errors import EmotionEdgeError

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

class SourceError(EmotionEdgeError, RuntimeError):
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

    def set_rate(self, fps: float | None) -> None:
        """Pace at `fps` from now on (None or 0: unpaced); a file source learns its own rate when it opens."""
        self._period = 1.0 / fps if fps and fps > 0 else 0.0

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

def _quietly(action: Callable[[], Any], name: str) -> None:
    """Run a cleanup step; a failing cleanup must not hide the error that led to it."""
    try:
        action()
    except Exception as exc:
        log.warning("%s: cleanup failed: %s", name, exc, extra={"source": name, "event": "cleanup_failed"})
