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

Identity, Frigate's way: every track gets an `id` when it appears, "<start unix
time>-<6 random characters>", carried at the top level and in `before`/`after`
with the track's `start_time`. It is unique across processes and devices
(a numeric `track_id` is the tracker's, per run, restarting at 1: it names the
face on the overlay and the HTTP API, `id` is what a subscriber keys by).

What Home Assistant needs to tell a change from a refresh or an appearance is
at the top level, where an event entity's template reads it: `reason`,
`emotion` (the reading after the event), `previous` (the one before, null for
`new`) and `confidence`.

Pure: no clock of its own beyond the readings' capture times (and one injected
wall clock to stamp them), no I/O but the injected id source, so every rule
above is unit-tested. `interrupted_end` builds the `end` of a track that a
killed run left open, from that track's last payload (mqtt/delivery.py sends it
at the next start).
"""

from __future__ import annotations

import datetime
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

from emotion_edge.device.pipeline import FaceReading, FrameReading

EventType = Literal["new", "update", "end"]
# `end` reasons besides `left` and `crashed`: `shutdown` (a clean stop), `paused` (detection switched off),
# `camera_lost` (no frame within the stall window): the device stopped seeing the face, so it must not stay open.
EventReason = Literal["appeared", "emotion_changed", "refresh", "left", "shutdown", "crashed", "paused", "camera_lost"]
# 1 still: the fields added since (id, stream, emotion, previous, confidence, start_time) are additions that a
# reader of the first shape can ignore, and recorders keep accepting the events of version 1.
PAYLOAD_VERSION = 1
ROUND = 4  # decimals for probabilities and boxes: 0.01% and 0.01% of the frame are below the model's noise
ID_ALPHABET = string.ascii_lowercase + string.digits


def new_event_id(start_wall: float) -> str:
    """A track's `id`, Frigate's shape: its start in Unix seconds (6 decimals) and 6 random characters.

    Unique across processes and devices without coordination: two tracks would need the same microsecond and the
    same draw out of 36**6 (2.2e9). The start first makes ids sort by time, as Frigate's do.
    """
    return f"{start_wall:.6f}-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(6))


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
    id: str  # the track's identity across its events, processes and devices (new_event_id)
    track_id: int  # the tracker's number for the face, per run
    start_wall: float  # when the track appeared, Unix seconds
    frame_index: int
    captured_monotonic: float  # the frame's capture time on the device's monotonic clock
    captured_wall: float  # the same instant in Unix seconds (UTC)
    track_age_s: float  # how long the track had existed at this event
    before: FaceState | None  # None only for `new`
    after: FaceState

    def to_payload(self, seq: int, stream: str, device_id: str, model_sha256: str,
                   labels: tuple[str, ...]) -> dict[str, Any]:
        """The `events` topic's JSON object (schema: device/schemas/event.schema.json); `seq` and `stream` come
        from the spool, which numbers events as it stores them."""
        return {
            "version": PAYLOAD_VERSION,
            "seq": seq,
            "stream": stream,
            "id": self.id,
            "type": self.type,
            "reason": self.reason,
            "device_id": device_id,
            "track_id": self.track_id,
            "time": iso_utc(self.captured_wall),
            "monotonic": round(self.captured_monotonic, 6),
            "frame": self.frame_index,
            "track_age_s": round(self.track_age_s, 3),
            "emotion": self.after.emotion,
            "previous": self.before.emotion if self.before else None,
            "confidence": round(self.after.confidence, ROUND),
            "before": self._face(self.before, labels),
            "after": self._face(self.after, labels, ended=self.type == "end"),
            "model_sha256": model_sha256,
        }

    def _face(self, state: FaceState | None, labels: tuple[str, ...], ended: bool = False) -> dict[str, Any] | None:
        """A reading as Frigate nests it: the track's `id` and `start_time` with it, `end_time` once it ended."""
        if state is None:
            return None
        face = {"id": self.id, "start_time": iso_utc(self.start_wall), **state.to_dict(labels)}
        if ended:
            face["end_time"] = iso_utc(self.captured_wall)  # when the track ended: the event's own time
        return face


def interrupted_end(last: dict[str, Any]) -> dict[str, Any]:
    """The `end` of a track that a run left open (killed, crashed, power lost), from its last event's payload.

    Everything is the last known instant: `time`, `monotonic`, `frame` and `after.end_time` are those of the
    track's last event, the last moment the device knew the face was in view. That is a lower bound (the face may
    have stayed until the crash), but the alternative, the restart's time, would count the whole outage as time
    in view. `before` is the last event's `after`, so the chain holds; `seq` and `stream` are replaced by the spool.
    """
    after = {**last["after"], "end_time": last["time"]}
    return {**last, "type": "end", "reason": "crashed", "previous": last["after"]["emotion"],
            "before": last["after"], "after": after}


def iso_utc(unix_seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, the form every JSON consumer parses."""
    stamp = datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Track:
    id: str  # new_event_id: the identity subscribers key by
    track_id: int
    started: float  # monotonic capture time of its first frame
    started_wall: float  # the same instant in Unix seconds
    published: FaceState  # the `after` of its last event
    published_at: float  # monotonic capture time of its last event
    latest: FaceState


class EventBuilder:
    """Per-track bookkeeping from readings to events; feed it every FrameReading in order, from one thread.

    `new_id` makes a track's `id` from its start time (injected so tests can name tracks)."""

    def __init__(self, labels: tuple[str, ...], min_interval_s: float = 1.0, refresh_s: float = 0.0,
                 wall_clock: Callable[[], float] = time.time, monotonic_clock: Callable[[], float] = time.monotonic,
                 new_id: Callable[[float], str] = new_event_id):
        self.labels = labels
        self.min_interval_s = min_interval_s
        self.refresh_s = refresh_s
        self._wall_clock = wall_clock
        self._monotonic_clock = monotonic_clock
        self._new_id = new_id
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
                track = _Track(self._new_id(wall), face.track_id, reading.timestamp, wall, state, reading.timestamp,
                               state)
                self._tracks[face.track_id] = track
                events.append(stamp.make("new", "appeared", track, None, state))
                continue
            track.latest = state
            due = self._due_update(track, reading.timestamp)
            if due is not None:
                events.append(self._update(track, stamp, due))
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

    def _update(self, track: _Track, stamp: _Stamp, reason: EventReason) -> EmotionEvent:
        """The `update` event for a track's latest state, which from now on counts as published."""
        out = stamp.make("update", reason, track, track.published, track.latest)
        track.published, track.published_at = track.latest, stamp.monotonic
        return out

    def _end(self, track_id: int, stamp: _Stamp, reason: EventReason) -> list[EmotionEvent]:
        track = self._tracks.pop(track_id, None)
        if track is None:
            return []
        events = []
        if track.latest.emotion != track.published.emotion:  # a change still held by min_interval_s
            events.append(self._update(track, stamp, "emotion_changed"))
        events.append(stamp.make("end", reason, track, track.published, track.latest))
        return events


@dataclass(frozen=True)
class _Stamp:
    """When the events of one reading happened; builds them so every event of a frame carries the same times."""

    frame_index: int
    monotonic: float
    wall: float

    def make(self, kind: EventType, reason: EventReason, track: _Track, before: FaceState | None,
             after: FaceState) -> EmotionEvent:
        return EmotionEvent(kind, reason, track.id, track.track_id, track.started_wall, self.frame_index,
                            self.monotonic, self.wall, max(self.monotonic - track.started, 0.0), before, after)
