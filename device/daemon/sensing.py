"""Whether the device is sensing right now, as one word every consumer shares (MQTT `sensing`, Home Assistant's
availability of the room entities, stats, the status page).

Connected to the broker is not the same as sensing: a camera that fails every few seconds leaves the MQTT link
up. Sensing means detection is on and the camera delivered a frame within the stall window.
"""

from __future__ import annotations

import time
from typing import Callable, Literal

SensingState = Literal["starting", "sensing", "camera_down", "paused", "stopped"]
STATES: tuple[SensingState, ...] = ("starting", "sensing", "camera_down", "paused", "stopped")


def sensing_state(*, paused: bool, camera_open: bool, last_frame_at: float | None, started_at: float, now: float,
                  window_s: float) -> SensingState:
    """`paused` (switched off) wins; else frames within `window_s` are `sensing`; a camera that failed (closed,
    being reopened) or stayed silent for the window is `camera_down`; before the first frame, `starting`."""
    if paused:
        return "paused"
    if not camera_open:
        return "camera_down"
    if last_frame_at is not None and now - last_frame_at < window_s:
        return "sensing"
    since = started_at if last_frame_at is None else last_frame_at
    return "starting" if last_frame_at is None and now - since < window_s else "camera_down"


class SensingMonitor:
    """Fed by the camera loop after every iteration; tells its listeners (on the loop's thread) when the state changes."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self.state: SensingState = "starting"
        self._started_at = clock()
        self._last_frame_at: float | None = None
        self.listeners: list[Callable[[SensingState], None]] = []

    def observe(self, *, frame: bool, paused: bool, camera_open: bool = True) -> SensingState:
        now = self._clock()
        if frame:
            self._last_frame_at = now
        if paused:
            self._started_at, self._last_frame_at = now, None  # after a resume, the camera gets a fresh window
        state = sensing_state(paused=paused, camera_open=camera_open, last_frame_at=self._last_frame_at,
                              started_at=self._started_at, now=now, window_s=self.window_s)
        if state != self.state:
            self.state = state
            for listener in self.listeners:
                listener(state)
        return state
