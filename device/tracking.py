"""Follow several faces across video frames so each keeps one stable id.

Why track at all: the emotion smoother and the events it drives are per
person. Without identities, one noisy frame of a second face would be averaged
into the first face's history, and every detection would look like someone new.

Why IoU, greedily: at camera rates a face moves little between detections, so
its new box overlaps its old one far more than anyone else's. Greedy matching
by highest IoU is exact in that common case, costs O(n^2) for the handful of
faces a Pi sees, and needs no Hungarian solver (no SciPy on the device).

Why a centroid fallback: a quick head turn, or detecting only every Nth frame,
can move a face more than its own width, so the IoU with its old box drops to
zero. A second pass pairs what the IoU pass left by centre distance measured
in face sizes, so the tolerance scales with how close the person stands.

Why predict with constant velocity: face detection (BlazeFace or a Haar cascade) costs far
more than classifying one crop, so the device detects only every N frames and
classifies on predicted boxes in between. The same prediction is what a track
is matched against, which is what keeps two faces' ids apart when they cross:
each track expects to be where its own motion carries it, not where it was.
Velocity comes from the last two detections (per second, not per frame) so
skipped or missed frames do not distort it; size is held constant, because
two noisy detector boxes say little about how fast a face grows.

Timestamps are float seconds from a monotonic clock (time.monotonic()): wall
time can jump backwards and would age tracks out or give them absurd speeds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

from emotion_edge.device.geometry import Box


@dataclass(frozen=True)
class TrackerConfig:
    """How strictly detections are matched to tracks and how long a lost face is kept.

    max_center_distance is in face sizes (the mean side of the two boxes), so
    it means the same for a face near the camera and one across the room.
    """

    iou_threshold: float = 0.3
    centroid_fallback: bool = True
    max_center_distance: float = 1.5
    max_missed: int = 5
    max_age_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"TrackerConfig field 'iou_threshold': must be in (0, 1], got {self.iou_threshold}")
        if not (math.isfinite(self.max_center_distance) and self.max_center_distance > 0):
            raise ValueError(
                f"TrackerConfig field 'max_center_distance': must be a positive number of face sizes, "
                f"got {self.max_center_distance}"
            )
        # bool is an int subclass; True as a miss count is surely a mistake.
        if isinstance(self.max_missed, bool) or not isinstance(self.max_missed, int) or self.max_missed < 0:
            raise ValueError(f"TrackerConfig field 'max_missed': must be an integer >= 0, got {self.max_missed!r}")
        if not (math.isfinite(self.max_age_s) and self.max_age_s > 0):
            raise ValueError(f"TrackerConfig field 'max_age_s': must be a positive number of seconds, got {self.max_age_s}")


@dataclass(frozen=True)
class Track:
    """One face's state after an update; a snapshot, so callers can keep it safely.

    `box` is the last detected box, `velocity` its centre's motion in pixels per
    second, `hits` the detections matched so far and `misses` the consecutive
    detection rounds since the last one.
    """

    track_id: int
    box: Box
    first_seen: float
    last_seen: float
    hits: int = 1
    misses: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)

    def predicted(self, now: float) -> Box:
        """The box moved on by the track's velocity to `now` (never backwards in time)."""
        dt = max(0.0, now - self.last_seen)
        return self.box.shifted(self.velocity[0] * dt, self.velocity[1] * dt)


@dataclass(frozen=True)
class TrackUpdate:
    """What one update did: tracks started, matched again, coasting unmatched, and ended."""

    new: tuple[Track, ...] = ()
    continued: tuple[Track, ...] = ()
    missed: tuple[Track, ...] = ()
    ended: tuple[Track, ...] = ()

    @property
    def detected(self) -> tuple[Track, ...]:
        """Tracks with a fresh detection this update: the ones to classify on their own box."""
        return _by_id(self.new + self.continued)


def _greedy_pairs(
    track_ids: Sequence[int],
    n_boxes: int,
    score: Callable[[int, int], float | None],
) -> list[tuple[int, int]]:
    """Pair tracks with boxes best-score-first; each used once. score() returns None for 'never'.

    Ties break by track id then box index, so the outcome does not depend on
    dict or sort stability.
    """
    candidates = []
    for t_index, track_id in enumerate(track_ids):
        for b_index in range(n_boxes):
            s = score(t_index, b_index)
            if s is not None:
                candidates.append((-s, track_id, b_index, t_index))
    candidates.sort()
    used_tracks: set[int] = set()
    used_boxes: set[int] = set()
    pairs = []
    for _, _, b_index, t_index in candidates:
        if t_index not in used_tracks and b_index not in used_boxes:
            used_tracks.add(t_index)
            used_boxes.add(b_index)
            pairs.append((t_index, b_index))
    return pairs


def _center_distance(a: Box, b: Box) -> float:
    """Centre distance in face sizes: the mean side of both boxes is the unit."""
    (ax, ay), (bx, by) = a.center, b.center
    size = (a.w + a.h + b.w + b.h) / 4.0
    return math.hypot(ax - bx, ay - by) / size


def _by_id(tracks: Iterable[Track]) -> tuple[Track, ...]:
    return tuple(sorted(tracks, key=lambda track: track.track_id))


def _continue(track: Track, box: Box, now: float) -> Track:
    dt = now - track.last_seen
    if dt > 0:
        (old_x, old_y), (new_x, new_y) = track.box.center, box.center
        velocity = ((new_x - old_x) / dt, (new_y - old_y) / dt)
    else:
        # Two detections at one instant carry no speed information; keep the last estimate.
        velocity = track.velocity
    return replace(track, box=box, last_seen=now, hits=track.hits + 1, misses=0, velocity=velocity)


class IouTracker:
    """Assigns stable integer ids to face boxes across detection rounds; one per camera."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: dict[int, Track] = {}
        self._next_id = itertools.count(1)
        self._last_now: float | None = None

    @property
    def tracks(self) -> tuple[Track, ...]:
        """Live tracks, oldest id first."""
        return tuple(self._tracks.values())

    def clear(self) -> None:
        """Drop every live track without an `ended` report (the caller ended them itself: the camera was lost or
        closed); ids keep counting up, so a face seen afterwards never continues an ended track's id."""
        self._tracks.clear()

    def predict(self, now: float) -> dict[int, Box]:
        """Each live track's box extrapolated to `now`, by id: for frames where detection is skipped.

        Does not change the tracker; only update() with real detections does.
        """
        return {track_id: track.predicted(now) for track_id, track in self._tracks.items()}

    def update(self, boxes: Iterable[Box], now: float) -> TrackUpdate:
        """Feed one round of detections taken at `now` (monotonic seconds)."""
        boxes = list(boxes)
        for box in boxes:
            if not isinstance(box, Box):
                raise TypeError(f"update() takes Box objects, got {type(box).__name__}; wrap detector output in Box(x, y, w, h)")
        self._check_time(now)
        aged_out = self._expire_stale(now)
        live = list(self._tracks.values())
        pairs = self._match(live, boxes, now)

        matched_tracks = {t for t, _ in pairs}
        matched_boxes = {b for _, b in pairs}
        continued = [_continue(live[t], boxes[b], now) for t, b in pairs]
        new = [Track(next(self._next_id), boxes[b], now, now) for b in range(len(boxes)) if b not in matched_boxes]
        missed, ended = [], list(aged_out)
        for t_index, track in enumerate(live):
            if t_index in matched_tracks:
                continue
            track = replace(track, misses=track.misses + 1)
            (ended if track.misses > self.config.max_missed else missed).append(track)

        for track in ended:
            self._tracks.pop(track.track_id, None)
        # Existing keys keep their place and new ids are the largest yet, so the
        # dict stays in id order without sorting.
        for track in continued + new + missed:
            self._tracks[track.track_id] = track
        return TrackUpdate(new=_by_id(new), continued=_by_id(continued), missed=_by_id(missed), ended=_by_id(ended))

    def _check_time(self, now: float) -> None:
        if not math.isfinite(now):
            raise ValueError(f"timestamp must be finite, got {now}")
        # A clock running backwards would yield negative ages and reversed velocities.
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"timestamps must not decrease: got {now} after {self._last_now}; use time.monotonic()")
        self._last_now = now

    def _expire_stale(self, now: float) -> list[Track]:
        """End tracks unseen for longer than max_age_s before matching, so a stale track cannot claim a new face."""
        stale = [t for t in self._tracks.values() if now - t.last_seen > self.config.max_age_s]
        for track in stale:
            del self._tracks[track.track_id]
        return stale

    def _match(self, live: list[Track], boxes: list[Box], now: float) -> list[tuple[int, int]]:
        # Match against where each track should be now, not where it was last seen.
        predicted = [track.predicted(now) for track in live]
        ids = [track.track_id for track in live]
        threshold = self.config.iou_threshold

        def iou_score(t: int, b: int) -> float | None:
            iou = predicted[t].iou(boxes[b])
            return iou if iou >= threshold else None

        pairs = _greedy_pairs(ids, len(boxes), iou_score)
        if not self.config.centroid_fallback:
            return pairs

        # The fallback covers every pair the IoU pass left, not only IoU == 0:
        # otherwise a far, non-overlapping box could match while a nearer,
        # slightly overlapping one could not.
        left_t = [t for t in range(len(live)) if t not in {p[0] for p in pairs}]
        left_b = [b for b in range(len(boxes)) if b not in {p[1] for p in pairs}]
        limit = self.config.max_center_distance

        def closeness(i: int, j: int) -> float | None:
            distance = _center_distance(predicted[left_t[i]], boxes[left_b[j]])
            return -distance if distance <= limit else None

        fallback = _greedy_pairs([ids[t] for t in left_t], len(left_b), closeness)
        return pairs + [(left_t[i], left_b[j]) for i, j in fallback]
