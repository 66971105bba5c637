"""The last hour on the device: a small ring buffer of the room, one point per `bucket_s` (default 10 s).

LiveState feeds it the room state of every frame; each point keeps the bucket's mean and peak faces in view, the
room's dominant emotion in most of its frames with a face, and each emotion's share of the face-frames. Memory is
bounded by `span_s / bucket_s` points (360 for an hour), whatever the frame rate. The status page draws it from
GET /api/v1/timeline.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from emotion_edge.device.room import RoomState


def iso_utc(unix_seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the MQTT payloads write times."""
    stamp = datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class TimelinePoint:
    start: float  # Unix seconds of the bucket's start
    frames: int
    faces: float  # mean faces in view over the bucket's frames
    max_faces: int
    dominant: str | None  # the room's dominant emotion in most frames with a face; None with no face
    shares: dict[str, float]  # percent of the face-frames per label (a face seen in 3 frames counts 3)

    def to_dict(self) -> dict[str, Any]:
        return {"time": iso_utc(self.start), "unix": round(self.start, 3), "frames": self.frames,
                "faces": round(self.faces, 3), "max_faces": self.max_faces, "dominant": self.dominant,
                "shares": {label: round(share, 2) for label, share in self.shares.items()}}


@dataclass
class _Bucket:
    start: float
    frames: int = 0
    faces: int = 0
    max_faces: int = 0
    dominant: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)

    def point(self, labels: tuple[str, ...]) -> TimelinePoint:
        face_frames = sum(self.counts.values())
        shares = {label: (100.0 * self.counts[label] / face_frames if face_frames else 0.0) for label in labels}
        dominant = self.dominant.most_common(1)[0][0] if self.dominant else None
        return TimelinePoint(self.start, self.frames, self.faces / max(self.frames, 1), self.max_faces, dominant,
                             shares)


class Timeline:
    """Thread-safe: the camera loop observes, the web server reads."""

    def __init__(self, bucket_s: float = 10.0, span_s: float = 3600.0, clock: Callable[[], float] = time.time):
        if bucket_s <= 0 or span_s < bucket_s:
            raise ValueError(f"a timeline needs 0 < bucket_s <= span_s, not {bucket_s} and {span_s}")
        self.bucket_s = bucket_s
        self.span_s = span_s
        self._clock = clock
        self._lock = threading.Lock()
        self._points: deque[TimelinePoint] = deque(maxlen=int(span_s // bucket_s))
        self._bucket: _Bucket | None = None
        self._labels: tuple[str, ...] = ()

    def observe(self, room: RoomState) -> None:
        now = self._clock()
        start = now - now % self.bucket_s
        with self._lock:
            self._labels = self._labels or tuple(room.counts)
            bucket = self._bucket
            if bucket is None or bucket.start != start:
                if bucket is not None:
                    self._points.append(bucket.point(self._labels))
                bucket = self._bucket = _Bucket(start)
            bucket.frames += 1
            bucket.faces += room.faces
            bucket.max_faces = max(bucket.max_faces, room.faces)
            if room.dominant is not None:
                bucket.dominant[room.dominant] += 1
            bucket.counts.update({label: n for label, n in room.counts.items() if n})

    def points(self) -> list[TimelinePoint]:
        """Every kept point of the last `span_s`, oldest first, with the bucket in progress last."""
        with self._lock:
            points = list(self._points)
            if self._bucket is not None:
                points.append(self._bucket.point(self._labels))
        horizon = self._clock() - self.span_s
        return [p for p in points if p.start >= horizon]

    def to_dict(self) -> dict[str, Any]:
        """The GET /api/v1/timeline body (openapi.json: Timeline)."""
        points = self.points()
        return {"bucket_s": self.bucket_s, "span_s": self.span_s, "labels": list(self._labels),
                "points": [p.to_dict() for p in points]}
