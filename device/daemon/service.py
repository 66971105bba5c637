"""What the daemon tells the outside world about itself: systemd notifications and the status file.

- `ServiceNotifier` speaks sd_notify: READY=1 once the model is loaded and the
  camera delivered a frame, WATCHDOG=1 from the processing loop itself (so a
  hung loop, not just a dead process, gets the service restarted), STATUS=,
  RELOADING=1 and STOPPING=1. Outside systemd ($NOTIFY_SOCKET unset) it is silent.
- `StatusFile` is the daemon's own report for the deploy tool: which model it is
  running, whether frames are flowing and why the last reload was refused,
  written atomically so a reader never sees half a file.
  (`model.reload.load_replacement` validates a new model before the daemon lets go of the old one.)
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import sdnotify

from emotion_edge.device.atomic import write_atomic

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class ServiceNotifier:
    """sd_notify messages to $NOTIFY_SOCKET, with the watchdog heartbeat rate-limited to a third of WatchdogSec."""

    def __init__(self, clock: Clock = time.monotonic):
        self._clock = clock
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        # sdnotify connects once and swallows send errors: a vanished socket must never stop the camera loop.
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None
        self.watchdog_interval_s = self._watchdog_interval()
        self._next_heartbeat = 0.0

    @staticmethod
    def _watchdog_interval() -> float | None:
        """Seconds between heartbeats, or None when systemd runs no watchdog for this process."""
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
            return None
        # systemd recommends half the timeout; a third leaves room for one slow frame.
        return int(usec) / 1e6 / 3

    def _send(self, *lines: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(lines))

    def ready(self, status: str) -> None:
        self._send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def heartbeat(self) -> bool:
        """WATCHDOG=1 if one is due; called on every loop iteration, so it stops when the loop does."""
        if self.watchdog_interval_s is None:
            return False
        now = self._clock()
        if now < self._next_heartbeat:
            return False
        self._send("WATCHDOG=1")
        self._next_heartbeat = now + self.watchdog_interval_s
        return True

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd >= 253 match this reload with the READY=1 that ends it.
        self._send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                   "STATUS=reloading the model")

    def stopping(self) -> None:
        self._send("STOPPING=1", "STATUS=stopping")


class StatusFile:
    """The daemon's status as one JSON file, replaced atomically at most every `interval_s`.

    The folder is never created here: under systemd it is the unit's
    RuntimeDirectory; elsewhere (a demo on a laptop) the first failure logs one
    warning and turns the file off instead of stopping the camera loop.
    """

    def __init__(self, path: Path | None, interval_s: float = 1.0, clock: Clock = time.monotonic):
        self.path = path
        self.interval_s = interval_s
        self._clock = clock
        self._next = 0.0

    def due(self) -> bool:
        return self.path is not None and self._clock() >= self._next

    def write(self, status: dict[str, Any]) -> None:
        if self.path is None:
            return
        self._next = self._clock() + self.interval_s
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            # The deploy user reads it over ssh (0o644); it holds nothing secret.
            write_atomic(self.path, json.dumps(status, default=str) + "\n", tmp=tmp, mode=0o644)
        except OSError as exc:
            # A missing folder is the normal case outside systemd (a demo run); anything else deserves a warning.
            level = logging.INFO if isinstance(exc, FileNotFoundError) else logging.WARNING
            log.log(level, "status file %s turned off: %s (its folder must exist; systemd creates "
                    "/run/emotion-edge as the unit's RuntimeDirectory)", self.path, exc.strerror)
            self.path = None


def read_status(path: Path) -> dict[str, Any] | None:
    """The daemon's last status, or None when there is none (yet)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # replaced between open and read, or being written by an older daemon: ask again
