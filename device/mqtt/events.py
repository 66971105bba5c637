"""Turn the per-frame readings into the few events a subscriber wants: a face appeared, its emotion changed, it left.

Publishing every frame would flood a broker with near-identical messages and
hide the changes in them. So each face track yields:

- `new` when it first appears;
- `update` when its reported (smoothed, hysteresis-held) emotion differs from
  the one last published, but never sooner than `min_interval_s` after the
  track's previous event: a change inside that window is held and published
  once the window has passed (if it still differs by then); plus, optionally,
  a `refresh` update every `refresh_s` while nothing changes, for loggers that
  want the probabilities and box over time;
- `end` when the tracker drops it (or the daemon shuts down).

An event's `before` is exactly its track's previous event's `after`, so a
subscriber can chain a track's events; `end`'s `after` is the track's last
reading, with `end_time` (Frigate's shape: a consumer reads `after` of every
event). A held change is published just before its track's `end`, so no change
is ever swallowed.

Pure: no clock of its own beyond the readings' capture times (and one injected
wall clock to stamp them), no I/O, so every rule above is unit-tested.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

from emotion_edge.device.pipeline import FaceReading, FrameReading

EventType = Literal["new", "update", "end"]
# `end` reasons besides `left`: `shutdown` (a clean stop), `paused` (detection switched off), `camera_lost` (no
# frame within the stall window): the device stopped seeing the face, so it must not stay open.
EventReason = Literal["appeared", "emotion_changed", "refresh", "left", "shutdown", "paused", "camera_lost"]
PAYLOAD_VERSION = 1
ROUND = 4  # decimals for probabilities and boxes: 0.01% and 0.01% of the frame are below the model's noise


@dataclass(frozen=True)
class FaceState:
    """One face's reported reading: smoothed emotion, its confidence, all probabilities, normalized box (x, y, w, h)."""

    emotion: str
    confidence: float
    probabilities: tuple[float, ...]  # in label order
    box: tuple[float, float, float, float]

    @classmethod
    def from_face(cls, face: FaceReading, labels: tuple[str, ...]) -> FaceState:
        state = face.state
        return cls(labels[state.dominant], float(state.confidence),
                   tuple(float(p) for p in state.probabilities), tuple(float(v) for v in face.box_norm))

    def to_dict(self, labels: tuple[str, ...]) -> dict[str, Any]:
        x, y, w, h = (round(v, ROUND) for v in self.box)
        return {
            "emotion": self.emotion,
            "confidence": round(self.confidence, ROUND),
            "probabilities": {label: round(p, ROUND) for label, p in zip(labels, self.probabilities)},
            "box": {"x": x, "y": y, "w": w, "h": h},
        }


@dataclass(frozen=True)
class EmotionEvent:
    type: EventType
    reason: EventReason
    track_id: int
    frame_index: int
    captured_monotonic: float  # the frame's capture time on the device's monotonic clock
    captured_wall: float  # the same instant in Unix seconds (UTC)
    track_age_s: float  # how long the track had existed at this event
    before: FaceState | None
    after: FaceState | None

    def to_payload(self, seq: int, device_id: str, model_sha256: str, labels: tuple[str, ...]) -> dict[str, Any]:
        """The `events` topic's JSON object (schema: device/schemas/event.schema.json)."""
        return {
            "version": PAYLOAD_VERSION,
            "seq": seq,
            "type": self.type,
            "reason": self.reason,
            "device_id": device_id,
            "track_id": self.track_id,
            "time": iso_utc(self.captured_wall),
            "monotonic": round(self.captured_monotonic, 6),
            "frame": self.frame_index,
            "track_age_s": round(self.track_age_s, 3),
            "before": self.before.to_dict(labels) if self.before else None,
            "after": self._after_dict(labels),
            "model_sha256": model_sha256,
        }

    def _after_dict(self, labels: tuple[str, ...]) -> dict[str, Any] | None:
        if self.after is None:
            return None
        after = self.after.to_dict(labels)
        if self.type == "end":
            after["end_time"] = iso_utc(self.captured_wall)  # when the track ended: the event's own time
        return after


def iso_utc(unix_seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, the form every JSON consumer parses."""
    stamp = datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Track:
    started: float  # monotonic capture time of its first frame
    published: FaceState  # the `after` of its last event
    published_at: float  # monotonic capture time of its last event
    latest: FaceState


class EventBuilder:
    """Per-track bookkeeping from readings to events; feed it every FrameReading in order, from one thread."""

    def __init__(self, labels: tuple[str, ...], min_interval_s: float = 1.0, refresh_s: float = 0.0,
                 wall_clock: Callable[[], float] = time.time, monotonic_clock: Callable[[], float] = time.monotonic):
        self.labels = labels
        self.min_interval_s = min_interval_s
        self.refresh_s = refresh_s
        self._wall_clock = wall_clock
        self._monotonic_clock = monotonic_clock
        self._tracks: dict[int, _Track] = {}
        self._last_frame = 0

    @property
    def open_tracks(self) -> tuple[int, ...]:
        return tuple(sorted(self._tracks))

    def observe(self, reading: FrameReading) -> list[EmotionEvent]:
        # Wall time of the capture: now, minus how long ago the frame was captured on the monotonic clock.
        wall = self._wall_clock() - (self._monotonic_clock() - reading.timestamp)
        stamp = _Stamp(reading.frame_index, reading.timestamp, wall)
        self._last_frame = reading.frame_index
        events: list[EmotionEvent] = []
        for track_id in reading.ended_tracks:
            events += self._end(track_id, stamp, "left")
        for face in reading.faces:
            state = FaceState.from_face(face, self.labels)
            track = self._tracks.get(face.track_id)
            if track is None:
                self._tracks[face.track_id] = _Track(reading.timestamp, state, reading.timestamp, state)
                events.append(stamp.make("new", "appeared", face.track_id, 0.0, None, state))
                continue
            track.latest = state
            due = self._due_update(track, reading.timestamp)
            if due is not None:
                events.append(self._update(face.track_id, track, stamp, due))
        return events

    def finish(self, reason: EventReason = "shutdown") -> list[EmotionEvent]:
        """`end` events for every open track, when the device stops seeing (a clean shutdown, detection switched
        off, the camera lost): subscribers see the room empty, not frozen."""
        now = self._monotonic_clock()
        stamp = _Stamp(self._last_frame, now, self._wall_clock())
        return [e for track_id in self.open_tracks for e in self._end(track_id, stamp, reason)]

    def _due_update(self, track: _Track, now: float) -> EventReason | None:
        waited = now - track.published_at
        if track.latest.emotion != track.published.emotion:
            return "emotion_changed" if waited >= self.min_interval_s else None
        if self.refresh_s > 0 and waited >= max(self.refresh_s, self.min_interval_s):
            return "refresh"
        return None

    def _update(self, track_id: int, track: _Track, stamp: _Stamp, reason: EventReason) -> EmotionEvent:
        """The `update` event for a track's latest state, which from now on counts as published."""
        out = stamp.make("update", reason, track_id, stamp.monotonic - track.started, track.published, track.latest)
        track.published, track.published_at = track.latest, stamp.monotonic
        return out

    def _end(self, track_id: int, stamp: _Stamp, reason: EventReason) -> list[EmotionEvent]:
        track = self._tracks.pop(track_id, None)
        if track is None:
            return []
        events = []
        if track.latest.emotion != track.published.emotion:  # a change still held by min_interval_s
            events.append(self._update(track_id, track, stamp, "emotion_changed"))
        events.append(stamp.make("end", reason, track_id, stamp.monotonic - track.started, track.published,
                                 track.latest))
        return events


@dataclass(frozen=True)
class _Stamp:
    """When the events of one reading happened; builds them so every event of a frame carries the same times."""

    frame_index: int
    monotonic: float
    wall: float

    def make(self, kind: EventType, reason: EventReason, track_id: int, age: float,
             before: FaceState | None, after: FaceState | None) -> EmotionEvent:
        return EmotionEvent(kind, reason, track_id, self.frame_index, self.monotonic, self.wall, max(age, 0.0),
                            before, after)
