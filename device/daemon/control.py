"""The detection switch: a privacy mode in which the daemon stops looking (the camera is closed, no face is
detected or classified) and says so, until it is switched on again.

Set from MQTT (the Home Assistant switch's command topic, on paho's thread) and read by the camera loop between
frames; kept in the state dir, so a privacy choice survives a restart or a reboot.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from emotion_edge.device.statefile import StateFile

log = logging.getLogger(__name__)

FILE_NAME = "detection.json"


class DetectionSwitch:
    """On (detecting) or off (paused); `set` may come from any thread, listeners run on the thread that set it."""

    def __init__(self, store: StateFile | None = None):
        self._store = store if store is not None else StateFile(None)
        self._enabled = self._store.load().get("enabled", True) is not False
        self._lock = threading.Lock()
        self._listeners: list[Callable[[bool], None]] = []
        if not self._enabled:
            log.warning("detection is switched off (privacy mode, kept from before the restart): the camera stays "
                        "closed until it is switched on", extra={"detection": "off"})

    @property
    def enabled(self) -> bool:
        return self._enabled

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def set(self, enabled: bool, by: str) -> bool:
        """Switch detection on or off (`by` says who, for the log); True when that changed it."""
        with self._lock:
            if enabled == self._enabled:
                return False
            self._enabled = enabled
            self._store.save({"enabled": enabled})
        log.warning("detection switched %s by %s%s", "on" if enabled else "off", by,
                    "" if enabled else ": privacy mode, the camera is closed and no face is processed",
                    extra={"detection": "on" if enabled else "off", "by": by})
        for listener in self._listeners:
            listener(enabled)
        return True
