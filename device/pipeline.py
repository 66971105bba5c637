"""One frame in, every face's tracked and smoothed emotion out: detect, track, crop, classify in one batch, smooth.

The daemon's loop, `emotion-edge analyze` on videos and the HTTP API all call
this, so a face is read the same way everywhere. Detection runs every
`detect_every` frames; in between, faces are classified on the boxes the
tracker predicts from their motion, which is much cheaper than detecting.
A model whose contract says flip_average is shown each face and its mirror in
one invoke (`mirrors = "together"`), or, at half the classifier's cost, the face
on one classification and its mirror on the next (`mirrors = "alternate"`), which the
smoother's moving average then blends. With `classify_every` N a tracked face
is classified on every Nth frame only (and at once when it is new); on the
frames between, its smoother is fed its last output again, so the smoother's
frame counts (`min_frames`) keep meaning frames. README "Device pipeline speed"
has the measurements behind the defaults.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import numpy as np

from emotion_edge.device.contract import crop_face
from emotion_edge.device.detection import FaceDetector
from emotion_edge.device.geometry import Box
from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.smoothing import EmotionSmoother, SmoothedState, SmootherConfig
from emotion_edge.device.sources import Frame
from emotion_edge.device.tracking import IouTracker, TrackerConfig

# wait: read() waiting for the frame (pacing, the camera's frame interval), no CPU; capture: the read's own work
# (decoding, the gray image); publish: handing the reading to the live state and the handlers.
STAGES = ("wait", "capture", "detect", "classify", "publish")
Mirrors = Literal["together", "alternate"]


@dataclass(frozen=True)
class PipelineConfig:
    detect_every: int = 2  # run the detector on every Nth frame, track in between
    max_faces: int = 8
    stats_interval_s: float = 10.0
    mirrors: Mirrors = "alternate"  # a flip_average model's mirror views: in every frame's invoke, or every other frame
    classify_every: int = 2  # classify each tracked face on every Nth frame (a new one at once), repeat its last output between

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"field 'detect_every' must be >= 1, got {self.detect_every}")
        if self.classify_every < 1:
            raise ValueError(f"field 'classify_every' must be >= 1, got {self.classify_every}")
        if self.mirrors not in get_args(Mirrors):
            raise ValueError(f"field 'mirrors' must be one of {list(get_args(Mirrors))}, got {self.mirrors!r}")
        if self.max_faces < 1:
            raise ValueError(f"field 'max_faces' must be >= 1, got {self.max_faces}")


@dataclass(frozen=True)
class FaceReading:
    """One face in one frame. `box` is in pixels of the frame's gray image; `box_norm` in 0-1 of its size."""

    track_id: int
    box: Box
    box_norm: tuple[float, float, float, float]
    probabilities: np.ndarray  # the raw model output of this frame, or of the face's last classified frame
    state: SmoothedState  # the track's smoothed emotion, with hysteresis
    is_new: bool
    classified: bool = True  # the model saw this face on this frame (with classify_every > 1, not on every frame)


@dataclass(frozen=True)
class FrameReading:
    frame_index: int
    timestamp: float
    faces: tuple[FaceReading, ...]
    ended_tracks: tuple[int, ...]
    detected: bool  # the detector ran on this frame (else boxes are motion predictions)


@dataclass
class StageTimer:
    """Per-stage milliseconds as an exponential moving average, for stats, and seconds in all, for benches."""

    alpha: float = 0.1
    ms: dict[str, float] = field(default_factory=lambda: {stage: 0.0 for stage in STAGES})
    total_s: dict[str, float] = field(default_factory=lambda: {stage: 0.0 for stage in STAGES})

    def record(self, stage: str, seconds: float) -> None:
        value = 1000.0 * seconds
        previous = self.ms.get(stage, 0.0)
        self.ms[stage] = value if previous == 0.0 else previous + self.alpha * (value - previous)
        self.total_s[stage] = self.total_s.get(stage, 0.0) + seconds


def normalized(box: Box, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    height, width = shape[:2]
    return (box.x / width, box.y / height, box.w / width, box.h / height)


def detect_boxes(detector: FaceDetector, image: np.ndarray, gray: np.ndarray,
                 chroma: tuple[np.ndarray, np.ndarray] | None = None) -> list[Box]:
    """Face boxes in `gray`'s pixels, detected on the colour image when the detector is better on colour.

    On a Pi the colour `main` stream is larger than the gray `lores` one, so
    colour detections are scaled down to the gray image that crops are cut from.
    With the lores stream's `chroma` planes, a detector that reads YUV takes its
    colour from them (gray is their Y): the smallest stream that serves.
    """
    if detector.prefers_color and chroma is not None and hasattr(detector, "detect_yuv"):
        return [d.box for d in detector.detect_yuv(gray, *chroma)]
    if not detector.prefers_color or image.ndim != 3:
        return [d.box for d in detector.detect(gray)]
    sx, sy = image.shape[1] / gray.shape[1], image.shape[0] / gray.shape[0]
    boxes = [d.box for d in detector.detect(image)]
    if (sx, sy) == (1.0, 1.0):
        return boxes
    return [Box(b.x / sx, b.y / sy, b.w / sx, b.h / sy) for b in boxes]


def classify_boxes(classifier: EmotionClassifier, gray: np.ndarray, boxes: list[Box], view: str | None = None) -> np.ndarray:
    """All faces of a frame through the model in one invoke; `view` as `EmotionClassifier.classify` takes it."""
    if not boxes:
        return np.zeros((0, len(classifier.labels)), np.float32)
    margin = classifier.contract.face_margin
    size = classifier.contract.input_size
    crops = np.stack([crop_face(gray, box.as_xywh(), size=size, margin=margin) for box in boxes])
    return classifier.classify(crops, view)


def missed_rounds(max_missed_frames: int, detect_every: int) -> int:
    """`[tracker] max_missed` (frames a face may go undetected) as the detection rounds the tracker counts, rounded
    up: a face that leaves ends its track as many frames later as when detecting every frame (at most N-1 more),
    not N times later."""
    return math.ceil(max_missed_frames / detect_every)


class FacePipeline:
    def __init__(
        self,
        detector: FaceDetector,
        classifier: EmotionClassifier,
        config: PipelineConfig = PipelineConfig(),
        tracker: TrackerConfig = TrackerConfig(),
        smoothing: SmootherConfig = SmootherConfig(),
    ):
        self.detector = detector
        self.classifier = classifier
        self.config = config
        self.smoothing = smoothing
        self.tracker = IouTracker(replace(tracker, max_missed=missed_rounds(tracker.max_missed, config.detect_every)))
        self.timer = StageTimer()
        self._smoothers: dict[int, EmotionSmoother] = {}
        self._last: dict[int, np.ndarray] = {}  # each track's last model output, repeated between classifications
        self._frames_seen = 0

    def use_classifier(self, classifier: EmotionClassifier) -> None:
        """Classify with `classifier` from the next frame on (a hot reload); its labels must be the running ones,
        which the smoothers' state was built for (`model.reload.load_replacement` checks that)."""
        if classifier.labels != self.classifier.labels:
            raise ValueError(f"use_classifier: labels {classifier.labels} differ from {self.classifier.labels}")
        self.classifier = classifier

    def forget_faces(self) -> None:
        """Start from an empty room: the device stopped seeing (camera lost, detection switched off) and its
        consumers ended every track, so no face after the gap continues one."""
        self.tracker.clear()
        self._smoothers.clear()
        self._last.clear()

    def _boxes(self, frame: Frame) -> tuple[dict[int, Box], set[int], tuple[int, ...], bool]:
        """Track id -> box for this frame, the ids that are new, the ids that ended, and whether we detected."""
        detect = self._frames_seen % self.config.detect_every == 0
        if not detect:
            # Coast only the faces the last detection found: one it missed has probably left, and classifying
            # the wall where it was would keep reporting a face that is gone until its track ends.
            coasting = self.tracker.predict(frame.timestamp)
            return {t.track_id: coasting[t.track_id] for t in self.tracker.tracks if t.misses == 0}, set(), (), False
        started = time.perf_counter()
        detections = detect_boxes(self.detector, frame.image, frame.gray, frame.chroma)[: self.config.max_faces]
        self.timer.record("detect", time.perf_counter() - started)
        update = self.tracker.update(detections, frame.timestamp)
        boxes = {t.track_id: t.box for t in update.detected}
        return boxes, {t.track_id for t in update.new}, tuple(t.track_id for t in update.ended), True

    def _view(self, frame_number: int) -> str | None:
        """This frame's view of the faces: the contract's (None), or with mirrors = "alternate" and a
        flip-averaging model, the face itself and its mirror on alternate classifications (with classify_every N,
        alternate blocks of N frames, so a face classified every Nth frame still sees both views in turn)."""
        if self.config.mirrors != "alternate" or not self.classifier.contract.flip_average:
            return None
        return "original" if (frame_number // self.config.classify_every) % 2 == 0 else "mirror"

    def _to_classify(self, frame_number: int, ids: list[int]) -> list[int]:
        """The faces the model sees on this frame: all on every `classify_every`th frame, else only those never
        classified yet (a new face is read at once)."""
        if frame_number % self.config.classify_every == 0:
            return ids
        return [i for i in ids if i not in self._last]

    def process(self, frame: Frame) -> FrameReading:
        boxes, new_ids, ended, detected = self._boxes(frame)
        frame_number = self._frames_seen
        self._frames_seen += 1
        for track_id in ended:
            self._smoothers.pop(track_id, None)
            self._last.pop(track_id, None)
        ids = sorted(boxes)
        classify = self._to_classify(frame_number, ids)
        started = time.perf_counter()
        probs = classify_boxes(self.classifier, frame.gray, [boxes[i] for i in classify], self._view(frame_number))
        self.timer.record("classify", time.perf_counter() - started)
        self._last.update(zip(classify, probs))
        faces = []
        for track_id in ids:
            p = self._last[track_id]
            smoother = self._smoothers.setdefault(track_id, EmotionSmoother(len(self.classifier.labels), self.smoothing))
            faces.append(FaceReading(track_id, boxes[track_id], normalized(boxes[track_id], frame.gray.shape),
                                     p, smoother.update(p), track_id in new_ids, track_id in classify))
        return FrameReading(frame.index, frame.timestamp, tuple(faces), ended, detected)
