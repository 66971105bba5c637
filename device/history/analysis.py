"""From a recording's events to the numbers the report draws: per-track emotion segments, per-interval shares,
faces in view, track durations, emotion transitions. NumPy only (no matplotlib), so tests and the device can use it.

Every number comes from the events (deduplicated, complete, in seq order), not the rate-limited room states:
- a track's *segment* is a stretch of time it showed one emotion: from its `new` (or an `update` that changed
  the emotion) to the next `update` or its `end`;
- an interval's *share* of an emotion is its face-seconds over all face-seconds in the interval, in percent;
- the room's *dominant* emotion in an interval is the one with the largest share (none when no face was in view);
- *faces in view* is the number of open tracks, a step function of time.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

import numpy as np

from emotion_edge.device.errors import EmotionEdgeError

# The shipped model's label order; labels seen in a recording but not listed here follow, sorted.
KNOWN_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class EmptyRecordingError(EmotionEdgeError):
    """A recording (or a device's part of it) without a single event: nothing to report."""


@dataclass(frozen=True)
class Segments:
    labels: tuple[str, ...]
    start: np.ndarray  # Unix seconds
    end: np.ndarray
    label: np.ndarray  # index into labels


@dataclass(frozen=True)
class History:
    """Everything a report shows, computed once."""

    labels: tuple[str, ...]
    first: float  # Unix seconds of the first and last event
    last: float
    interval_s: float
    edges: np.ndarray  # interval boundaries, Unix seconds, len = intervals + 1
    face_seconds: np.ndarray  # (intervals, labels)
    faces_t: np.ndarray  # faces in view: step function, value faces_n[i] from faces_t[i] on
    faces_n: np.ndarray
    durations_s: np.ndarray  # one per ended track
    transitions: np.ndarray  # (labels, labels): counts of emotion changes, row = before, column = after
    events: int
    devices: tuple[str, ...]

    @property
    def shares(self) -> np.ndarray:
        """Percent of each interval's face-seconds per emotion; NaN where no face was in view."""
        total = self.face_seconds.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, 100.0 * self.face_seconds / total, np.nan)

    @property
    def dominant(self) -> list[str | None]:
        return [None if row.sum() <= 0 else self.labels[int(np.argmax(row))] for row in self.face_seconds]

    @property
    def mean_faces(self) -> np.ndarray:
        """Mean faces in view per interval: all face-seconds over the interval's length."""
        return self.face_seconds.sum(axis=1) / np.diff(self.edges)


def auto_interval(span_s: float, target: int = 96) -> float:
    """A round interval giving about `target` intervals over the span (a day: 15 minutes)."""
    for step in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if span_s / step <= target:
            return float(step)
    return 86400.0 * math.ceil(span_s / 86400 / target)


def read_events(db: sqlite3.Connection, device: str | None = None) -> list[tuple]:
    query = ("SELECT device_id, track_id, unix, type, emotion, before_emotion, reason, track_age_s FROM events"
             + (" WHERE device_id = ?" if device else "") + " ORDER BY device_id, seq")
    return db.execute(query, (device,) if device else ()).fetchall()


def order_labels(seen: set[str]) -> tuple[str, ...]:
    return tuple(label for label in KNOWN_LABELS if label in seen) + tuple(sorted(seen - set(KNOWN_LABELS)))


def build_segments(rows: list[tuple]) -> tuple[Segments, np.ndarray, list[tuple[str, str]]]:
    """Walk each device's events in seq order: segments, ended tracks' durations, and the emotion changes."""
    labels = order_labels({r[4] for r in rows if r[4]} | {r[5] for r in rows if r[5]})
    index = {label: i for i, label in enumerate(labels)}
    open_: dict[tuple[str, int], tuple[float, str]] = {}  # track -> (segment start, emotion)
    starts, ends, which, durations, changes = [], [], [], [], []
    last_time: dict[str, float] = {}
    for device, track, unix, kind, emotion, before, reason, age in rows:
        key = (device, track)
        current = open_.pop(key, None)
        if current is not None:
            starts.append(current[0])
            ends.append(unix if kind != "new" else last_time.get(device, current[0]))  # a `new` on an open track:
            which.append(index[current[1]])  # the device restarted without its `end`; close it at the last event
        if kind == "new" and emotion:
            open_[key] = (unix, emotion)
        elif kind == "update" and emotion:
            open_[key] = (unix, emotion)
            if reason == "emotion_changed" and before and before != emotion:
                changes.append((before, emotion))
        elif kind == "end":
            durations.append(age)
        last_time[device] = unix
    for (device, _), (start, emotion) in open_.items():  # still open at the recording's end
        starts.append(start)
        ends.append(last_time[device])
        which.append(index[emotion])
    segments = Segments(labels, np.asarray(starts, float), np.asarray(ends, float), np.asarray(which, int))
    return segments, np.asarray(durations, float), changes


def face_seconds(segments: Segments, edges: np.ndarray) -> np.ndarray:
    """(intervals, labels): seconds each emotion was shown by any face within each interval."""
    out = np.zeros((len(edges) - 1, len(segments.labels)))
    for i in range(len(segments.labels)):
        mask = segments.label == i
        start, end = segments.start[mask], segments.end[mask]
        if not len(start):
            continue
        # Seconds of each segment before each edge, summed: the cumulative face-seconds at each edge.
        cumulative = np.zeros(len(edges))
        for chunk in range(0, len(start), 20000):  # bounded memory: 20000 segments x edges at a time
            s, e = start[chunk:chunk + 20000, None], end[chunk:chunk + 20000, None]
            cumulative += np.clip(np.minimum(e, edges[None, :]) - s, 0.0, None).sum(axis=0)
        out[:, i] = np.diff(cumulative)
    return out


def faces_in_view(segments: Segments) -> tuple[np.ndarray, np.ndarray]:
    """The number of faces in view as a step function: (times, counts from each time on)."""
    times = np.concatenate([segments.start, segments.end])
    steps = np.concatenate([np.ones(len(segments.start)), -np.ones(len(segments.end))])
    order = np.lexsort((steps, times))  # at one instant an end (-1) before a start (+1): no spurious peaks
    times, counts = times[order], np.cumsum(steps[order])
    keep = np.append(times[1:] != times[:-1], True)  # the count after the last change at each instant
    times, counts = times[keep], counts[keep]
    changed = np.insert(counts[1:] != counts[:-1], 0, True)  # a segment boundary inside a track changes nothing
    return times[changed], counts[changed].astype(int)


def transition_matrix(labels: tuple[str, ...], changes: list[tuple[str, str]]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), int)
    for before, after in changes:
        matrix[index[before], index[after]] += 1
    return matrix


def analyse(db: sqlite3.Connection, device: str | None = None, interval_s: float | None = None) -> History:
    rows = read_events(db, device)
    if not rows:
        raise EmptyRecordingError("the recording holds no events" + (f" of device {device!r}" if device else ""))
    segments, durations, changes = build_segments(rows)
    first, last = min(r[2] for r in rows), max(r[2] for r in rows)
    interval = interval_s or auto_interval(max(last - first, 1.0))
    origin = math.floor(first / interval) * interval
    edges = origin + interval * np.arange(max(1, math.ceil((last - origin) / interval)) + 1)
    times, counts = faces_in_view(segments)
    return History(segments.labels, first, last, interval, edges, face_seconds(segments, edges), times, counts,
                   durations, transition_matrix(segments.labels, changes), len(rows),
                   tuple(sorted({r[0] for r in rows})))
