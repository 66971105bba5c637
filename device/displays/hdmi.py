"""The HDMI preview on a Pi: picamera2 shows the camera's `main` stream, we lay the overlay over it.

picamera2 draws the camera image itself (DRM on the console, a QtGL window in a
desktop session) on its own event loop, at camera rate, without our frames ever
passing through Python. All this module adds is the overlay: `set_overlay` with
the renderer's RGBA image, from its own thread at `max_fps`, and only when a new
frame has been processed. So the preview costs the pipeline one overlay render
per shown update, never a copy of the frame.

picamera2 starts its event loop in `start()` (a null preview unless one is
already running), so the preview must be started between `configure()` and
`start()`: PiCameraSource calls `attach` there (and `detach` before closing),
on every (re)open of the camera.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.displays.config import HdmiConfig
from emotion_edge.device.displays.worker import Clock, DisplayWorker, FpsMeter
from emotion_edge.device.overlay import snapshot_hud, snapshot_overlay

log = logging.getLogger(__name__)

PreviewStarter = Callable[[Any, str], None]


def preview_kind(kind: str, environ: dict[str, str] | os._Environ = os.environ) -> str:
    """"drm" or "qtgl": "auto" means a window when a desktop session ($DISPLAY or $WAYLAND_DISPLAY) exists."""
    if kind != "auto":
        return kind
    return "qtgl" if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY") else "drm"


def start_picamera2_preview(camera: Any, kind: str) -> None:
    from picamera2 import Preview  # only on a Pi; imported when a camera is attached

    camera.start_preview(Preview.DRM if kind == "drm" else Preview.QTGL)


def _main_size(camera: Any) -> tuple[int, int]:
    """The `main` stream's (width, height): the overlay is drawn at the size of the picture it covers."""
    width, height = camera.camera_config["main"]["size"]
    return int(width), int(height)


class HdmiPreview:
    """Attach to each Picamera2 object the source opens; push overlays from LiveState at a bounded rate."""

    def __init__(self, config: HdmiConfig, live: LiveState, *, start_preview: PreviewStarter = start_picamera2_preview,
                 environ: dict[str, str] | os._Environ = os.environ, clock: Clock = time.monotonic):
        self.config = config
        self.live = live
        self.kind = preview_kind(config.kind, environ)
        self._start_preview = start_preview
        self._clock = clock
        self._lock = threading.Lock()
        self._camera: Any = None
        self._drawn: tuple[int, str, int | None] | None = None
        self._fps = FpsMeter()
        self.failure: str | None = None
        self.overlays_set = 0
        self.worker = DisplayWorker("hdmi", config.max_fps, self.tick)

    # -- called by PiCameraSource on the camera loop's thread ------------------------------------------
    def attach(self, camera: Any) -> None:
        """Start the preview on a configured, not yet started camera. Never raises: the camera must go on."""
        if self.failure is not None:
            return  # failed once, logged once; a reopened camera runs without a preview
        try:
            self._start_preview(camera, self.kind)
        except Exception as exc:
            self._fail(f"cannot start the {self.kind} preview: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            self._camera, self._drawn = camera, None
        log.info("hdmi preview started (%s)", self.kind, extra={"display": "hdmi", "event": "display_started",
                                                                 "kind": self.kind})

    def detach(self, camera: Any) -> None:
        with self._lock:
            if self._camera is camera:
                self._camera = None

    # -- the preview thread ---------------------------------------------------------------------------
    def tick(self) -> None:
        snapshot = self.live.snapshot()
        fps = self._fps.update(snapshot.sequence, self._clock())
        hud = snapshot_hud(snapshot, fps)
        key = (snapshot.sequence, snapshot.mqtt, None if hud.fps is None else round(hud.fps))
        with self._lock:
            camera = self._camera
        if camera is None or key == self._drawn:
            return
        overlay = snapshot_overlay(snapshot, self.live.labels, _main_size(camera), hud)
        with self._lock:
            # Set it under the lock, and only on the camera it was drawn for: detach() (the camera closing on
            # the loop's thread) waits for this call rather than racing it.
            if self._camera is not camera:
                return
            camera.set_overlay(overlay)
            self._drawn = key
            self.overlays_set += 1

    def _fail(self, reason: str) -> None:
        self.failure = reason
        log.warning("hdmi preview disabled: %s", reason,
                    extra={"display": "hdmi", "event": "display_failed", "error": reason})
