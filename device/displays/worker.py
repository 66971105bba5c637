"""A display's own thread: call `tick` at most `rate_hz` times a second; the first failure disables it, logged once.

Every display shares this loop, so none of them can take the camera loop down
with it: a display only ever reads `LiveState` snapshots, and an exception in
its tick ends its thread (with one warning naming the display and the reason)
rather than propagating anywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class DisplayWorker:
    def __init__(self, name: str, rate_hz: float, tick: Callable[[], None], close: Callable[[], None] | None = None):
        if rate_hz <= 0:
            raise ValueError(f"{name}: rate must be positive, got {rate_hz}")
        self.name = name
        self.period = 1.0 / rate_hz
        self.ticks = 0
        self.cpu_s = 0.0  # CPU seconds this thread spent in tick: what the display costs (bench/preview.py)
        self.failure: str | None = None
        self._tick = tick
        self._close = close
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"display-{name}", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                due = time.monotonic() + self.period
                started = time.thread_time()
                try:
                    self._tick()
                except Exception as exc:
                    self.failure = f"{type(exc).__name__}: {exc}"
                    log.warning("display %s failed and is disabled: %s", self.name, self.failure,
                                extra={"display": self.name, "event": "display_failed", "error": self.failure})
                    return
                self.ticks += 1
                self.cpu_s += time.thread_time() - started
                # A period from the start of one tick to the next: a late tick never bursts to catch up.
                self._stop.wait(max(0.0, due - time.monotonic()))
        finally:
            self._run_close()

    def _run_close(self) -> None:
        if self._close is None:
            return
        try:
            self._close()
        except Exception as exc:  # a failing cleanup must not hide why the display stopped
            log.warning("display %s: cleanup failed: %s", self.name, exc,
                        extra={"display": self.name, "event": "display_cleanup_failed"})


class FpsMeter:
    """Frames per second from LiveState's sequence numbers, as the display sees them (a fresher figure than
    the daemon's periodic stats)."""

    def __init__(self, alpha: float = 0.5):
        self.alpha = alpha
        self.fps: float | None = None
        self._last: tuple[int, float] | None = None

    def update(self, sequence: int, now: float) -> float | None:
        if self._last is not None and now > self._last[1]:
            rate = (sequence - self._last[0]) / (now - self._last[1])
            self.fps = rate if self.fps is None else self.fps + self.alpha * (rate - self.fps)
        self._last = (sequence, now)
        return self.fps
