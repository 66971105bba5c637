"""The daemon's TOML configuration, validated into dataclasses (every key is documented in examples/config.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomllib

from emotion_edge.device.config.identity import default_device_id
from emotion_edge.device.config.schema import ConfigError, build
from emotion_edge.device.detection import DetectorConfig
from emotion_edge.device.displays.config import DisplayConfig
from emotion_edge.device.mqtt.config import MqttConfig
from emotion_edge.device.pipeline import PipelineConfig
from emotion_edge.device.smoothing import SmootherConfig
from emotion_edge.device.sources.spec import SourceOptions
from emotion_edge.device.tracking import TrackerConfig
from emotion_edge.device.web.config import HttpConfig


@dataclass(frozen=True)
class CameraConfig:
    source: str = "picamera2"
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    loop: bool = False
    # Video files and image folders come at their own frame rate like a camera (fps if set); false: unpaced.
    paced: bool = True
    lores_width: int = 640
    stall_timeout_s: float = 10.0
    reopen_initial_s: float = 1.0
    reopen_max_s: float = 30.0

    def __post_init__(self) -> None:
        # fps, width and height may be left out (the camera's own), but a value given must be one a camera can
        # run at: a negative fps passed validation and made the daemon reopen the camera forever.
        for name in ("stall_timeout_s", "reopen_initial_s", "reopen_max_s", "lores_width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"field '{name}' must be positive, got {getattr(self, name)}")
        for name in ("fps", "width", "height"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"field '{name}' must be positive (or left out for the camera's default), "
                                 f"got {value}")

    def source_options(self, **extra: Any) -> SourceOptions:
        """What open_source() takes from this section; `extra` sets what no config file can (the camera preview,
        a camera factory) or what the caller decides (on_bad_file). The one place [camera] becomes SourceOptions."""
        return SourceOptions(width=self.width, height=self.height, fps=self.fps, loop=self.loop,
                             paced=self.paced, lores_width=self.lores_width, **extra)


@dataclass(frozen=True)
class ModelConfig:
    path: Path = Path("/var/lib/emotion-edge/models/current")
    threads: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 16:
            raise ValueError(f"field 'threads' must be 1-16, got {self.threads}")


@dataclass(frozen=True)
class ServiceConfig:
    # Read by `emotion-edge device-model health` during a deploy; its folder is the unit's RuntimeDirectory.
    status_file: Path = Path("/run/emotion-edge/status.json")
    status_interval_s: float = 1.0
    # Small state kept across restarts (the detection switch, the Home Assistant discovery last published). Never
    # created here: the unit's StateDirectory; elsewhere writing fails once with a warning and memory serves.
    state_dir: Path = Path("/var/lib/emotion-edge")

    def __post_init__(self) -> None:
        if self.status_interval_s <= 0:
            raise ValueError(f"field 'status_interval_s' must be positive, got {self.status_interval_s}")


@dataclass(frozen=True)
class LogConfig:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class DaemonConfig:
    # Unset: `<hostname>-<8 hex from /etc/machine-id>`, unique per machine and stable across restarts (identity.py).
    device_id: str = field(default_factory=default_device_id)
    camera: CameraConfig = field(default_factory=CameraConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    smoothing: SmootherConfig = field(default_factory=SmootherConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    log: LogConfig = field(default_factory=LogConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)


def parse_config(text: str, where: str = "config") -> DaemonConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    return build(DaemonConfig, raw, where)


def load_config(path: Path) -> DaemonConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; start from examples/config.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    return parse_config(text, str(path))
