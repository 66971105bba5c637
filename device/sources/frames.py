"""The frame model every source emits, the `FrameSource` interface, its shared base and playback pacing."""

from __future__ import annotations

import logging
import sys
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
    waited_s: seconds read() spent waiting for this frame to be due or to arrive (a pacer's sleep, a camera's
        frame interval), which the loop's stats keep apart from the capture's own work.
    chroma: the U and V planes (half the gray image's width and height) where the source delivers YUV 4:2:0, as
        the Pi camera's lores stream does: with ``gray`` as Y they are a small colour image of the same view,
        which a colour detector reads instead of the larger ``image``.
    """

    image: np.ndarray
    gray: np.ndarray
    timestamp: float
    index: int
    waited_s: float = 0.0
    chroma: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        # Cheap checks that catch a misconfigured camera format here rather than deep in the detector.
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"Frame.image must be uint8 HxWx3, got {self.image.dtype} {self.image.shape}")
        if self.gray.dtype != np.uint8 or self.gray.ndim != 2:
            raise ValueError(f"Frame.gray must be uint8 HxW, got {self.gray.dtype} {self.gray.shape}")
        half = (self.gray.shape[0] // 2, self.gray.shape[1] // 2)
        if self.chroma is not None and any(p.dtype != np.uint8 or p.shape != half for p in self.chroma):
            raise ValueError(f"Frame.chroma must be two uint8 {half} planes, got {[p.shape for p in self.chroma]}")

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

    _gray_pool: BufferPool | None = None

    def _emit(self, image: np.ndarray, timestamp: float, waited_s: float = 0.0) -> Frame:
        """A BGR image as the next numbered frame, its gray image in a reused buffer."""
        if self._gray_pool is None:
            self._gray_pool = BufferPool()
        frame = bgr_frame(image, timestamp, self._index, waited_s, self._gray_pool)
        self._index += 1
        return frame


class BufferPool:
    """Frame-sized arrays handed out again once nothing else holds them, instead of a fresh one per frame.

    Why: a 640x480 frame is far over malloc's mmap threshold, so each new one is mapped and each freed one
    unmapped, and touching it again page-faults (issue 19 profiled about 245 faults a frame, 7% of the loop, in
    freeing the previous frame alone). Why reference
    counts: a frame lives on after the loop moved on (the live state, a preview encoding it, a view of it), and
    an array is safe to overwrite only when the pool's own list holds the last reference to it (numpy views
    hold their base, so they count too). When all `size` arrays are still held, a fresh unpooled one is made.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._arrays: list[np.ndarray] = []
        self.allocated = 0  # arrays made, pooled or not: a steady loop stops adding to it

    def take(self, shape: tuple[int, ...], dtype: Any = np.uint8) -> np.ndarray:
        """A C-contiguous array of this shape and dtype that no one else references (its content is stale)."""
        dtype = np.dtype(dtype)
        if self._arrays and (self._arrays[0].shape != shape or self._arrays[0].dtype != dtype):
            self._arrays = []  # the camera changed size: the old arrays go when their last holders let go
        for array in self._arrays:
            # 3 references when free: the list, this loop's variable and getrefcount's argument.
            if sys.getrefcount(array) <= 3:
                return array
        array = np.empty(shape, dtype)
        self.allocated += 1
        if len(self._arrays) < self.size:
            self._arrays.append(array)
        return array


def bgr_frame(image: np.ndarray, timestamp: float, index: int, waited_s: float = 0.0,
              gray_pool: BufferPool | None = None) -> Frame:
    """A Frame from an OpenCV image (gray, BGR or BGRA); the gray image goes into `gray_pool`'s buffers."""
    if image.ndim == 2:
        gray = image
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    else:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if gray_pool is not None and image.ndim == 3 and image.shape[2] == 3:
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY, dst=gray_pool.take(image.shape[:2]))
        else:
            gray = to_gray(image)
    return Frame(image=image, gray=gray, timestamp=timestamp, index=index, waited_s=waited_s)


class _Pacer:
    """Holds frames back to a fixed rate (fps) without ever blocking longer than a read's timeout."""

    def __init__(self, fps: float | None, clock: Clock, sleep: Sleep) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._period = 1.0 / fps if fps else 0.0
        self._clock = clock
        self._sleep = sleep
        self._due: float | None = None
        self.waited_s = 0.0  # seconds the last wait() slept

    def reset(self) -> None:
        self._due = None

    def set_rate(self, fps: float | None) -> None:
        """Pace at `fps` from now on (None or 0: unpaced); a file source learns its own rate when it opens."""
        self._period = 1.0 / fps if fps and fps > 0 else 0.0

    def wait(self, timeout: float) -> bool:
        """Sleep until the next frame is due; False if that is more than ``timeout`` away."""
        self.waited_s = 0.0
        if not self._period or self._due is None:
            return True
        delay = self._due - self._clock()
        if delay > timeout:
            self._sleep(max(timeout, 0.0))
            self.waited_s = max(timeout, 0.0)
            return False
        if delay > 0:
            self._sleep(delay)
            self.waited_s = delay
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
