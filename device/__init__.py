"""The Pi side: camera to faces to emotions, out over MQTT, HTTP and displays. No TensorFlow here.

Packages re-export their public names (`from emotion_edge.device.mqtt import MqttPublisher`). The packages that
many others import (config, model, mqtt, daemon, commands) resolve those names lazily, on first use, through
`lazy_exports`: importing `emotion_edge.device.mqtt.config` must not load paho and the publisher, and a package
whose `__init__` imported everything it re-exports would tie every part of the device into one import cycle.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

# The product's version: `emotion-edge --version` prints it and Home Assistant discovery publishes it.
__version__ = "0.1.0"


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `exports` maps each public name to the submodule that defines it."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
