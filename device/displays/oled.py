"""The 128x64 I2C OLED (SSD1306 or SH1106, through luma.oled): the room's mood at a glance.

    HAPPY            <- the room's dominant emotion, large
    2 faces 14.8 fps
    MQTT connected
    IP 192.168.1.23

`render_oled_screen` is pure (state in, 1-bit PIL image out) so tests check its
pixels; `OledDisplay` owns the panel: it redraws at `refresh_hz` on its own
thread, only sends a frame when the picture changed (I2C is slow), and dims,
then switches the panel off, when nobody has been in view for a while.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageDraw, ImageFont

from emotion_edge.device.daemon.live import LiveState, Snapshot
from emotion_edge.device.displays.config import OledConfig
from emotion_edge.device.displays.network import IpProvider, primary_ipv4
from emotion_edge.device.displays.worker import Clock, DisplayWorker, FpsMeter

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 128, 64
BIG_SCALE = 3  # the dominant emotion's glyphs, scaled up from the 6x11 bitmap font: 8 px caps -> 24 px
BIG_TOP = 1
LINE_TOPS = (28, 40, 52)  # three lines of the 11-pixel font under the big word
IP_REFRESH_S = 30.0  # DHCP may hand out a new address; looking it up is cheap but not free
NO_FACE = "NOBODY"  # the big word while the room is empty

IdleLevel = Literal["on", "dim", "blank"]


@dataclass(frozen=True)
class OledState:
    """Everything the screen shows; built from a LiveState snapshot by `oled_state`."""

    dominant: str | None  # None when nobody is in view
    faces: int
    fps: float | None
    mqtt: str  # LiveState's mqtt field: "disabled", "connecting", "connected", "disconnected" or an error
    ip: str | None


def _font() -> ImageFont.ImageFont:
    # Pillow's built-in bitmap font: identical pixels on every machine (a TrueType font would depend on the
    # FreeType build), crisp on a 1-bit panel, and no font file to install on the Pi.
    return ImageFont.load_default_imagefont()


def mqtt_text(state: str) -> str:
    if state in ("connected", "connecting", "disabled"):
        return f"MQTT {state}"
    return "MQTT down"  # disconnected, or an error text too long for 21 characters


def status_lines(state: OledState) -> tuple[str, str, str]:
    fps = f" {state.fps:.1f} fps" if state.fps is not None else ""
    faces = f"{state.faces} face{'' if state.faces == 1 else 's'}"
    return f"{faces}{fps}", mqtt_text(state.mqtt), f"IP {state.ip or 'none'}"


def _big_text(text: str, font: ImageFont.ImageFont) -> Image.Image:
    """`text` in the bitmap font, cropped to its ink and scaled up by whole pixels (BIG_SCALE, less if too wide)."""
    left, top, right, bottom = font.getbbox(text)
    small = Image.new("1", (right, bottom), 0)
    ImageDraw.Draw(small).text((0, 0), text, fill=1, font=font)
    ink = small.getbbox() or (0, 0, 1, 1)
    small = small.crop(ink)
    scale = max(1, min(BIG_SCALE, WIDTH // small.width))
    return small.resize((small.width * scale, small.height * scale), Image.Resampling.NEAREST)


def render_oled_screen(state: OledState) -> Image.Image:
    """The 128x64 mode-'1' image for `state` (1 = lit pixel)."""
    font = _font()
    screen = Image.new("1", (WIDTH, HEIGHT), 0)
    big = _big_text(state.dominant.upper() if state.dominant else NO_FACE, font)
    screen.paste(big, ((WIDTH - big.width) // 2, BIG_TOP))
    draw = ImageDraw.Draw(screen)
    for top, line in zip(LINE_TOPS, status_lines(state)):
        draw.text((0, top), line, fill=1, font=font)
    return screen


def oled_state(snapshot: Snapshot, ip: str | None, fps: float | None) -> OledState:
    room = snapshot.room
    faces = room.faces if room is not None else 0
    return OledState(room.dominant if room is not None and faces else None, faces, fps, snapshot.mqtt, ip)


def idle_level(idle_s: float, config: OledConfig) -> IdleLevel:
    """How bright the panel should be after `idle_s` seconds without a face (0 in a setting means never)."""
    if config.idle_blank_s and idle_s >= config.idle_blank_s:
        return "blank"
    if config.idle_dim_s and idle_s >= config.idle_dim_s:
        return "dim"
    return "on"


def open_luma_device(config: OledConfig) -> Any:
    """The luma.oled device for `config`; raises (ImportError, luma's DeviceNotFoundError, ...) when absent."""
    from luma.core.interface.serial import i2c
    from luma.oled.device import sh1106, ssd1306

    driver = {"ssd1306": ssd1306, "sh1106": sh1106}[config.driver]
    return driver(i2c(port=config.i2c_port, address=config.i2c_address), width=WIDTH, height=HEIGHT,
                  rotate=config.rotate)


class OledDisplay:
    """Drives one panel from LiveState. `device` is a luma device (tests pass luma's dummy)."""

    def __init__(self, config: OledConfig, live: LiveState, device: Any, *,
                 ip_provider: IpProvider = primary_ipv4, clock: Clock = time.monotonic):
        self.config = config
        self.live = live
        self.device = device
        self._ip_provider = ip_provider
        self._clock = clock
        self._fps = FpsMeter()
        self._ip: str | None = None
        self._ip_at = float("-inf")
        self._last_face_at = clock()
        self._level: IdleLevel | None = None
        self._shown: bytes | None = None
        self.frames_sent = 0
        self.worker = DisplayWorker("oled", config.refresh_hz, self.tick, self.close)

    def _current_ip(self, now: float) -> str | None:
        if now - self._ip_at >= IP_REFRESH_S:
            self._ip, self._ip_at = self._ip_provider(), now
        return self._ip

    def _set_level(self, level: IdleLevel) -> None:
        if level == self._level:
            return
        if level == "blank":
            self.device.hide()
        else:
            if self._level in (None, "blank"):
                self.device.show()
            self.device.contrast(self.config.dim_contrast if level == "dim" else self.config.contrast)
        self._level = level

    def tick(self) -> None:
        now = self._clock()
        snapshot = self.live.snapshot()
        if snapshot.room is not None and snapshot.room.faces:
            self._last_face_at = now
        self._set_level(idle_level(now - self._last_face_at, self.config))
        if self._level == "blank":
            return
        fps = self._fps.update(snapshot.sequence, now)
        screen = render_oled_screen(oled_state(snapshot, self._current_ip(now), fps))
        pixels = screen.tobytes()
        if pixels != self._shown:  # an unchanged picture is not worth an I2C transfer
            self.device.display(screen)
            self._shown = pixels
            self.frames_sent += 1

    def close(self) -> None:
        # luma's cleanup switches the panel off and clears it, so no stale mood stays lit after the daemon stops.
        self.device.cleanup()
