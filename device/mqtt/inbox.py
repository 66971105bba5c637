"""What reaches the MQTT publisher's worker thread (event batches, acks, room states, sensing changes, signals),
the publisher's counters, and `Fault`, the once-per-episode log of a failure that repeats while it lasts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from emotion_edge.device.daemon.sensing import SensingState
from emotion_edge.device.mqtt.events import EmotionEvent
from emotion_edge.device.room import RoomState

SPOOL_RETRY_S = 1.0  # after a failed spool write or delete (disk full, I/O error), wait this long before trying again


@dataclass(frozen=True)
class EventBatch:
    events: list[EmotionEvent]
    model_sha256: str  # of the model that read these frames (a reload may swap it at any time)


@dataclass(frozen=True)
class Acked:
    mid: int


@dataclass(frozen=True)
class RoomItem:
    room: RoomState


@dataclass(frozen=True)
class SensingItem:
    state: SensingState


@dataclass(frozen=True)
class Signal:
    name: str


CONNECTED = Signal("connected")
STOP = Signal("stop")


@dataclass
class PublisherCounters:
    connects: int = 0
    refused: int = 0  # CONNACKs that refused us (bad credentials, ...)
    events: int = 0  # events created and spooled
    delivered: int = 0  # events acknowledged by the broker
    spool_errors: int = 0  # spool writes and deletes that failed (each retried)
    pending_dropped: int = 0  # events dropped from memory while the spool could not be written


class Fault:
    """One kind of failure that repeats while it lasts (a full disk): logged once with its cause, and again
    when it clears, not on every retry, which would flood a small SD card's journal with the same line."""

    def __init__(self, what: str, log: logging.Logger):
        self.what = what
        self._log = log
        self.failures = 0  # in the current episode
        self._cause = ""

    def failed(self, exc: BaseException, **extra: Any) -> None:
        self.failures += 1
        cause = f"{type(exc).__name__}: {exc}"
        if cause != self._cause:  # a new episode, or the same fault with another cause
            self._cause = cause
            self._log.error("mqtt: %s failed (%s); retrying every %g s, logging again when it works",
                      self.what, cause, SPOOL_RETRY_S, extra={"cause": cause, **extra})

    def succeeded(self) -> None:
        if self.failures:
            self._log.warning("mqtt: %s works again after %d failed attempt(s)", self.what, self.failures,
                        extra={"failures": self.failures})
        self.failures, self._cause = 0, ""
