"""Reopen-with-backoff: wraps any source and turns transient failures and stalls into retries."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable

from emotion_edge.device.sources.frames import (
    Clock,
    Frame,
    FrameSource,
    Sleep,
    SourceBase,
    SourceError,
    SourceExhausted,
    _quietly,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: initial * factor**attempt, capped at max_delay.

    jitter is a fraction: 0.1 spreads each delay uniformly over +-10%, so several sensors
    that lost one RTSP server do not all reconnect in the same instant.
    """

    initial: float = 1.0
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.max_delay < self.initial or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid backoff {self}: need 0 < initial <= max_delay, factor >= 1, 0 <= jitter < 1")

    def delay(self, attempt: int, uniform: float = 0.5) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); ``uniform`` in [0, 1) drives jitter."""
        # Cap the exponent: factor**attempt overflows a float after a long outage.
        base = min(self.max_delay, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 + self.jitter * (2.0 * uniform - 1.0))


@dataclass
class SourceStats:
    """Counters for health reporting.

    frames: frames delivered. failures: open() or read() errors. stalls: times no frame came
    for stall_timeout seconds. reopens: successful opens that followed a failure or stall.
    bad_files: files an image source skipped as unreadable.
    last_error: the most recent failure or stall, as text.
    """

    frames: int = 0
    failures: int = 0
    reopens: int = 0
    stalls: int = 0
    bad_files: int = 0
    last_error: str = ""


class ReopeningSource(SourceBase):
    """Keeps any source alive: on failure or stall it closes it and opens a fresh one with backoff.

    Transient problems never raise: read() returns None while the source is down and
    sleeps at most ``timeout`` per call, so the caller's loop (watchdog pings, MQTT) keeps
    running. Only SourceExhausted (a finite file that ended) and misuse propagate.
    Frame indices are renumbered so they keep increasing across reopens.
    """

    def __init__(
        self,
        factory: Callable[[], FrameSource],
        backoff: Backoff = Backoff(),
        *,
        stall_timeout: float = 10.0,
        name: str = "source",
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        if stall_timeout <= 0:
            raise ValueError(f"stall_timeout must be positive, got {stall_timeout}")
        self.name = name
        self.backoff = backoff
        self.stall_timeout = stall_timeout
        self._factory = factory
        self._clock = clock
        self._sleep = sleep
        self._uniform = uniform
        self._stats = SourceStats()
        self._inner: FrameSource | None = None
        self._active = False
        self._recovering = False
        self._attempt = 0
        self._retry_at = 0.0
        self._last_progress = 0.0
        self._index_base = 0
        self._next_index = 0

    @property
    def stats(self) -> SourceStats:
        """A snapshot, so the caller can publish it without racing later updates."""
        self._count_bad_files()
        return dataclasses.replace(self._stats)

    def _count_bad_files(self) -> None:
        """The open image source's skipped files (kept after it closes, for the final stats)."""
        bad = getattr(self._inner, "bad_files", None)
        if bad is not None:
            self._stats.bad_files = len(bad)

    @property
    def is_connected(self) -> bool:
        return self._inner is not None

    def open(self) -> None:
        self._active = True
        if self._inner is None:
            self._try_open()

    def read(self, timeout: float) -> Frame | None:
        if not self._active:
            raise SourceError(f"{self.name}: read() before open()")
        if self._inner is None:
            self._wait_for_retry(timeout)
            return None
        try:
            frame = self._inner.read(timeout)
        except SourceExhausted:
            raise
        except Exception as exc:
            self._fail("read", f"{type(exc).__name__}: {exc}")
            return None
        now = self._clock()
        if frame is None:
            if now - self._last_progress >= self.stall_timeout:
                self._stats.stalls += 1
                self._fail("stall", f"no frame for {now - self._last_progress:.1f}s")
            return None
        self._last_progress = now
        self._attempt = 0
        # Offset, not renumber: gaps in the inner source's numbering (stale frames it dropped) must survive.
        # (max: still increasing when an inner source restarts its own numbering mid-stream)
        frame = dataclasses.replace(frame, index=max(self._next_index, self._index_base + frame.index))
        self._next_index = frame.index + 1
        self._stats.frames += 1
        return frame

    def _wait_for_retry(self, timeout: float) -> None:
        delay = self._retry_at - self._clock()
        if delay > timeout:
            self._sleep(max(timeout, 0.0))
            return
        if delay > 0:
            self._sleep(delay)
        self._try_open()

    def _try_open(self) -> bool:
        try:
            source = self._factory()
            source.open()
        except SourceExhausted:
            raise
        except Exception as exc:
            self._fail("open", f"{type(exc).__name__}: {exc}")
            return False
        self._inner = source
        self._index_base = self._next_index
        self._last_progress = self._clock()
        if self._recovering:
            self._stats.reopens += 1
            self._recovering = False
            log.info(
                "source %s reopened after %d failure(s)",
                self.name,
                self._attempt,
                extra={"source": self.name, "event": "source_reopened", "reopens": self._stats.reopens},
            )
        return True

    def _fail(self, stage: str, error: str) -> None:
        """Record a failure, drop the inner source and schedule the next open with backoff."""
        if stage != "stall":
            self._stats.failures += 1
        self._stats.last_error = f"{stage}: {error}"
        self._close_inner()
        delay = self.backoff.delay(self._attempt, self._uniform())
        self._attempt += 1
        self._retry_at = self._clock() + delay
        self._recovering = True
        log.warning(
            "source %s %s failed: %s; retrying in %.1fs",
            self.name,
            stage,
            error,
            delay,
            extra={
                "source": self.name,
                "event": "source_failure",
                "stage": stage,
                "error": error,
                "retry_in_s": round(delay, 3),
                "attempt": self._attempt,
                "failures": self._stats.failures,
                "stalls": self._stats.stalls,
            },
        )

    def _close_inner(self) -> None:
        self._count_bad_files()
        inner, self._inner = self._inner, None
        if inner is not None:
            _quietly(inner.close, self.name)

    def close(self) -> None:
        self._active = False
        self._close_inner()
