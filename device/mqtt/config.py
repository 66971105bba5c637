"""The `[mqtt]` config section, its topics, and the broker password (read from a file or the environment, never kept in config).

The password is deliberately not a config field (see config/secrets.py): only where
to find it is configured (`password_file` or `password_env`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from emotion_edge.device.config.secrets import read_secret_file

# MQTT topic levels may not hold wildcards or NUL; a device id becomes one level of every topic.
_TOPIC_FORBIDDEN = re.compile(r"[+#\x00]")


@dataclass(frozen=True)
class MqttTlsConfig:
    enabled: bool = False
    ca_file: Path | None = None  # None: the system's CA store
    certfile: Path | None = None  # client certificate, for brokers that require one
    keyfile: Path | None = None

    def __post_init__(self) -> None:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("fields 'certfile' and 'keyfile' go together: set both or neither")


@dataclass(frozen=True)
class HomeAssistantConfig:
    enabled: bool = True  # publish discovery configs whenever MQTT is enabled
    discovery_prefix: str = "homeassistant"
    # Home Assistant's birth (and last will) topic: its own setting in Home Assistant's MQTT integration, not
    # derived from the discovery prefix.
    birth_topic: str = "homeassistant/status"
    # The device page's link in Home Assistant (the status page). "" = http://<hostname>.local:<port>/ when [http]
    # listens beyond loopback, none otherwise; set it when Home Assistant reaches the device by another name.
    configuration_url: str = ""

    def __post_init__(self) -> None:
        for name in ("discovery_prefix", "birth_topic"):
            value = getattr(self, name)
            if not value or _TOPIC_FORBIDDEN.search(value):
                raise ValueError(f"field '{name}' must be a topic without + # or NUL, got {value!r}")
        if self.configuration_url and not re.match(r"^https?://[^\s/]+", self.configuration_url):
            raise ValueError(f"field 'configuration_url' must be an http:// or https:// URL, got {self.configuration_url!r}")


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = False
    host: str = "localhost"
    port: int = 1883
    client_id: str = ""  # "" = "emotion-edge-<device_id>": stable, so the broker sees one client across restarts
    topic_prefix: str = ""  # "" = "emotion-edge/<device_id>"
    keepalive_s: int = 30
    qos: int = 1  # for events: 1 or 2; QoS 0 could lose them, which the spool exists to prevent
    username: str = ""
    password_file: Path | None = None
    password_env: str = ""
    update_min_interval_s: float = 1.0
    update_refresh_s: float = 0.0
    state_min_interval_s: float = 1.0
    stats_interval_s: float = 30.0
    spool_path: Path = Path("/var/lib/emotion-edge/spool.db")
    spool_max_bytes: int = 16 * 1024 * 1024
    max_inflight: int = 16
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    shutdown_flush_s: float = 3.0
    tls: MqttTlsConfig = field(default_factory=MqttTlsConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("field 'host' must not be empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"field 'port' must be 1-65535, got {self.port}")
        if not 5 <= self.keepalive_s <= 3600:
            raise ValueError(f"field 'keepalive_s' must be 5-3600 seconds, got {self.keepalive_s}")
        if self.topic_prefix and (_TOPIC_FORBIDDEN.search(self.topic_prefix) or self.topic_prefix.endswith("/")):
            raise ValueError(f"field 'topic_prefix' must be a topic without + # NUL or a trailing /, got {self.topic_prefix!r}")
        if self.qos not in (1, 2):
            raise ValueError(f"field 'qos' must be 1 or 2 (QoS 0 has no acknowledgement to spool against), got {self.qos}")
        if self.password_file is not None and self.password_env:
            raise ValueError("fields 'password_file' and 'password_env' exclude each other: set one")
        if (self.password_file is not None or self.password_env) and not self.username:
            raise ValueError("a password ('password_file' or 'password_env') needs field 'username'")
        for name in ("update_min_interval_s", "update_refresh_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"field '{name}' must be >= 0, got {getattr(self, name)}")
        for name in ("state_min_interval_s", "stats_interval_s", "reconnect_min_s", "reconnect_max_s", "shutdown_flush_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"field '{name}' must be positive, got {getattr(self, name)}")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(f"field 'reconnect_max_s' ({self.reconnect_max_s}) must be >= 'reconnect_min_s' "
                             f"({self.reconnect_min_s})")
        if self.spool_max_bytes < 64 * 1024:
            raise ValueError(f"field 'spool_max_bytes' must be at least 65536, got {self.spool_max_bytes}")
        if not 1 <= self.max_inflight <= 1000:
            raise ValueError(f"field 'max_inflight' must be 1-1000, got {self.max_inflight}")


def device_prefix(device_id: str) -> str:
    """The topic prefix of a device whose [mqtt] topic_prefix is unset; `listen` passes `+` to follow every device."""
    return f"emotion-edge/{device_id}"


@dataclass(frozen=True)
class Topics:
    """Every topic the device publishes or listens to, from one prefix."""

    prefix: str

    @classmethod
    def for_device(cls, device_id: str, topic_prefix: str = "") -> Topics:
        if not topic_prefix and (not device_id or _TOPIC_FORBIDDEN.search(device_id) or "/" in device_id):
            raise ValueError(f"device_id {device_id!r} cannot be a topic level: use letters, digits, - or _")
        return cls(topic_prefix or device_prefix(device_id))

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    @property
    def state(self) -> str:
        return f"{self.prefix}/state"

    @property
    def stats(self) -> str:
        return f"{self.prefix}/stats"

    @property
    def sensing(self) -> str:
        """Whether the device is sensing now (camera delivering frames, detection on): plain text, retained."""
        return f"{self.prefix}/sensing"

    @property
    def detection(self) -> str:
        """The detection switch's state, `ON` or `OFF`, retained."""
        return f"{self.prefix}/detection"

    @property
    def detection_set(self) -> str:
        """The detection switch's command topic (`ON` / `OFF`), the one topic the daemon subscribes to."""
        return f"{self.prefix}/detection/set"

    @property
    def retained(self) -> tuple[str, ...]:
        """Every topic the device publishes retained: what forgetting the device must clear."""
        return (self.availability, self.state, self.sensing, self.detection)


def client_id_for(config: MqttConfig, device_id: str) -> str:
    return config.client_id or f"emotion-edge-{device_id}"


def read_password(config: MqttConfig) -> str | None:
    """The broker password from `password_file` or `password_env`; None when neither is set.

    Errors name the setting, never the value.
    """
    if config.password_file is not None:
        return read_secret_file(config.password_file, "mqtt.password_file",
                                "write the broker password into it on one line, readable only by the daemon")
    if config.password_env:
        value = os.environ.get(config.password_env)
        if value is None:
            raise ValueError(f"mqtt.password_env: environment variable {config.password_env} is not set; "
                             "set it in the service's environment (systemd: EnvironmentFile=)")
        return value
    return None
