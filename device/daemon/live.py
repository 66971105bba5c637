"""The daemon's latest view of the world, shared with the consumers that run on their own threads.

The camera loop writes one snapshot per frame (a cheap reference swap under a
lock); previews, the OLED, the status page and the HTTP API read it at their own
bounded rates. So a slow display can never slow the loop: it just skips frames.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from emotion_edge.device.daemon.timeline import Timeline
from emotion_edge.device.pipeline import FrameReading
from emotion_edge.device.room import RoomState, room_state
from emotion_edge.device.sources import Frame


@dataclass(frozen=True)
class Snapshot:
    frame: Frame | None = None  # the newest processed frame (BGR image + gray)
    reading: FrameReading | None = None
    room: RoomState | None = None
    stats: dict[str, Any] = field(default_factory=dict)  # the daemon's latest stats()
    mqtt: str = "disabled"  # "disabled", "connecting", "connected", "disconnected" or an error text
    sensing: str = "starting"  # daemon/sensing.py's states: starting, sensing, camera_down, paused, stopped
    last_event: dict[str, Any] | None = None  # the last event published (the MQTT `events` payload)
    # Increases with every frame and when the view is cleared, so readers can tell a new snapshot from the one they drew.
    sequence: int = 0


class LiveState:
    """The snapshot, and the last hour of the room (`timeline`, fed with every frame's room state)."""

    def __init__(self, labels: tuple[str, ...], timeline: Timeline | None = None):
        self.labels = labels
        self.timeline = timeline if timeline is not None else Timeline()
        self._lock = threading.Lock()
        self._snapshot = Snapshot(room=room_state(None, labels))

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def update_frame(self, frame: Frame, reading: FrameReading) -> None:
        room = room_state(reading, self.labels)
        with self._lock:
            self._snapshot = replace(self._snapshot, frame=frame, reading=reading, room=room,
                                     sequence=self._snapshot.sequence + 1)
        self.timeline.observe(room)  # outside the snapshot's lock: readers of the snapshot never wait for it

    def clear_view(self) -> None:
        """Nothing seen (no frame, no reading, an empty room) once the device stops seeing: previews and displays
        must not keep showing the last image, least of all after detection was switched off for privacy."""
        with self._lock:
            self._snapshot = replace(self._snapshot, frame=None, reading=None, room=room_state(None, self.labels),
                                     sequence=self._snapshot.sequence + 1)

    def update(self, **fields: Any) -> None:
        """Replace other fields (stats, mqtt, last_event) without touching the frame."""
        with self._lock:
            self._snapshot = replace(self._snapshot, **fields)
