"""The `[display.hdmi]` and `[display.oled]` TOML tables (every key is documented in examples/config.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def _check_rate(name: str, value: float, most: float) -> None:
    if not 0 < value <= most:
        raise ValueError(f"field '{name}' must be in (0, {most:g}], got {value}")


@dataclass(frozen=True)
class HdmiConfig:
    enabled: bool = False
    # "drm" draws on the console (no desktop), "qtgl" opens a window in a desktop session, "auto" picks qtgl
    # when $DISPLAY is set.
    kind: Literal["auto", "drm", "qtgl"] = "auto"
    # Overlay updates per second; the camera image itself is shown at full rate by picamera2.
    max_fps: float = 10.0

    def __post_init__(self) -> None:
        _check_rate("max_fps", self.max_fps, 60.0)


@dataclass(frozen=True)
class OledConfig:
    enabled: bool = False
    driver: Literal["ssd1306", "sh1106"] = "ssd1306"
    i2c_port: int = 1
    i2c_address: int = 0x3C
    # 0 or 2 (180 degrees, for a display mounted upside down); the 128x64 layout has no portrait form.
    rotate: Literal[0, 2] = 0
    refresh_hz: float = 2.0
    contrast: int = 255
    dim_contrast: int = 16
    # Seconds without a face before dimming and before switching the panel off (0 = never); OLED pixels
    # that show the same thing for days burn in.
    idle_dim_s: float = 60.0
    idle_blank_s: float = 600.0

    def __post_init__(self) -> None:
        _check_rate("refresh_hz", self.refresh_hz, 30.0)
        if not 0x03 <= self.i2c_address <= 0x77:
            raise ValueError(f"field 'i2c_address' must be a 7-bit I2C address 0x03-0x77, got {self.i2c_address:#x}")
        if self.i2c_port < 0:
            raise ValueError(f"field 'i2c_port' must be >= 0, got {self.i2c_port}")
        for name in ("contrast", "dim_contrast"):
            if not 0 <= getattr(self, name) <= 255:
                raise ValueError(f"field '{name}' must be 0-255, got {getattr(self, name)}")
        for name in ("idle_dim_s", "idle_blank_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"field '{name}' must be >= 0 (0 = never), got {getattr(self, name)}")


@dataclass(frozen=True)
class DisplayConfig:
    hdmi: HdmiConfig = field(default_factory=HdmiConfig)
    oled: OledConfig = field(default_factory=OledConfig)
