"""The Raspberry Pi camera through picamera2: a gray lores stream for detection beside the colour main stream."""

from __future__ import annotations

import logging
import time
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from emotion_edge.device.sources.frames import (
    _WAIT_TIMEOUTS,
    BufferPool,
    Frame,
    SourceBase,
    SourceError,
    _quietly,
)

log = logging.getLogger(__name__)


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
        self._gray_pool = BufferPool()

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
        started = time.perf_counter()
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
        waited = time.perf_counter() - started  # the camera's frame interval: the ISP works, not this CPU
        try:
            main = request.make_array("main")
            lores = request.make_array("lores")
        except Exception as exc:
            raise SourceError(f"{self.name}: cannot read camera buffers: {exc}") from exc
        finally:
            request.release()  # the camera has only a few buffers; a leaked one stalls it
        frame = Frame(image=main, gray=self._y_plane(lores), timestamp=timestamp, index=self._index, waited_s=waited,
                      chroma=self._chroma_planes(lores))
        self._index += 1
        return frame

    def _y_plane(self, lores: np.ndarray) -> np.ndarray:
        # YUV420 arrives as (height * 3 / 2, stride): Y rows first, then U and V; the stride may pad columns.
        width, height = self.config.lores_size
        if lores.ndim != 2 or lores.shape[0] < height or lores.shape[1] < width:
            raise SourceError(f"{self.name}: lores buffer {lores.shape} is not YUV420 for {width}x{height}")
        gray = self._gray_pool.take((height, width))
        np.copyto(gray, lores[:height, :width])
        return gray

    def _chroma_planes(self, lores: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The U and V planes of the lores buffer, as views (no copy): after the Y rows, each at half the width
        and height and half the stride. None when the buffer is too short to hold them."""
        width, height = self.config.lores_size
        stride = lores.shape[1]
        flat = lores.reshape(-1)
        offset, size = height * stride, (height // 2) * (stride // 2)
        if flat.size < offset + 2 * size:
            return None
        u, v = (flat[start : start + size].reshape(height // 2, stride // 2)[:, : width // 2]
                for start in (offset, offset + size))
        return u, v

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
