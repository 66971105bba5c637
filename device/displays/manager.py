"""Start the displays the config enables; any that is absent or fails is logged once and left off.

    displays = DisplayManager(config.display, live, camera_source=config.camera.source)
    source = build_source(config, displays.camera_preview)   # the HDMI preview rides the camera (when there is one)
    displays.start(); daemon.run(); displays.stop()           # as `daemon.app.App` does

Nothing here can stop the camera loop or MQTT: opening a display happens once,
before the loop, with every error caught; afterwards each display runs on its
own thread (DisplayWorker), which ends itself on its first failure.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.displays.config import DisplayConfig, OledConfig
from emotion_edge.device.displays.hdmi import HdmiPreview, PreviewStarter, start_picamera2_preview
from emotion_edge.device.displays.network import IpProvider, primary_ipv4
from emotion_edge.device.displays.worker import Clock, DisplayWorker
from emotion_edge.device.sources import PICAMERA_SPECS

log = logging.getLogger(__name__)

OledOpener = Callable[[OledConfig], Any]


@dataclass(frozen=True)
class DisplayHardware:
    """How the displays reach their hardware and the world; tests replace these with fakes."""

    open_oled: OledOpener | None = None  # None: luma.oled over I2C
    start_preview: PreviewStarter = start_picamera2_preview
    ip_provider: IpProvider = primary_ipv4
    environ: Any = field(default_factory=lambda: os.environ)
    clock: Clock = time.monotonic


def _disabled(name: str, reason: str) -> None:
    log.warning("display %s disabled: %s", name, reason, extra={"display": name, "event": "display_disabled",
                                                                "error": reason})


class DisplayManager:
    def __init__(self, config: DisplayConfig, live: LiveState, *, camera_source: str,
                 hardware: DisplayHardware = DisplayHardware()):
        self.config = config
        self.hardware = hardware
        self.problems: dict[str, str] = {}  # display -> why it is off, for logs and the status page
        self.hdmi: HdmiPreview | None = None
        self.oled: Any = None  # an OledDisplay; its module (Pillow, luma) is imported only when enabled
        if config.hdmi.enabled:
            self.hdmi = self._make_hdmi(live, camera_source)
        if config.oled.enabled:
            self.oled = self._make_oled(live)

    def _make_hdmi(self, live: LiveState, camera_source: str) -> HdmiPreview | None:
        # picamera2 draws the HDMI preview itself, so it needs the Pi camera; other sources have no preview.
        if camera_source.strip().lower() not in PICAMERA_SPECS:
            return self._off("hdmi", f"the HDMI preview needs the picamera2 source, not {camera_source!r}")
        hw = self.hardware
        return HdmiPreview(self.config.hdmi, live, start_preview=hw.start_preview, environ=hw.environ, clock=hw.clock)

    def _make_oled(self, live: LiveState) -> Any:
        try:
            from emotion_edge.device.displays.oled import OledDisplay, open_luma_device

            device = (self.hardware.open_oled or open_luma_device)(self.config.oled)
        except Exception as exc:  # ImportError (no oled extra), DeviceNotFoundError (no /dev/i2c-N), OSError (no ack)
            return self._off("oled", f"cannot open the {self.config.oled.driver} at i2c-{self.config.oled.i2c_port} "
                                     f"address {self.config.oled.i2c_address:#04x}: {type(exc).__name__}: {exc}")
        return OledDisplay(self.config.oled, live, device, ip_provider=self.hardware.ip_provider,
                           clock=self.hardware.clock)

    def _off(self, name: str, reason: str) -> None:
        self.problems[name] = reason
        _disabled(name, reason)
        return None

    @property
    def camera_preview(self) -> HdmiPreview | None:
        """What the Pi camera source attaches each camera to (SourceOptions.camera_preview)."""
        return self.hdmi

    @property
    def workers(self) -> list[DisplayWorker]:
        return [d.worker for d in (self.hdmi, self.oled) if d is not None]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def status(self) -> dict[str, str]:
        """Per configured display: "running", or why it is off (for stats and the status page)."""
        states = {name: f"off: {reason}" for name, reason in self.problems.items()}
        for name, display in (("hdmi", self.hdmi), ("oled", self.oled)):
            if display is None:
                continue
            failure = getattr(display, "failure", None) or display.worker.failure
            states[name] = f"off: {failure}" if failure else ("running" if display.worker.running else "stopped")
        return states
