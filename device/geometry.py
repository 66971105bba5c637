"""Face boxes and their overlap: `Box` (x, y, w, h in pixels) and intersection over union, the one implementation
the tracker, the detectors' non-maximum suppression and the benchmarks share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

Number = int | float


@dataclass(frozen=True)
class Box:
    """An axis-aligned face box: top-left corner (x, y), width w and height h, in pixels."""

    x: Number
    y: Number
    w: Number
    h: Number

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.w, self.h)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"box coordinates must be finite, got {values}")
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"box width and height must be positive, got w={self.w}, h={self.h}")

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2.0, self.y + self.h / 2.0)

    @property
    def area(self) -> float:
        return float(self.w * self.h)

    def iou(self, other: Box) -> float:
        """Intersection over union, in [0, 1]."""
        return iou((self.x, self.y, self.w, self.h), (other.x, other.y, other.w, other.h))

    def shifted(self, dx: float, dy: float) -> Box:
        return Box(self.x + dx, self.y + dy, self.w, self.h)

    def as_xywh(self) -> tuple[int, int, int, int]:
        """Rounded pixel box, the form contract.crop_face() takes."""
        return (round(self.x), round(self.y), max(1, round(self.w)), max(1, round(self.h)))


def iou(a: Sequence[Number], b: Sequence[Number]) -> float:
    """Intersection over union of two (x, y, w, h) boxes, in [0, 1]."""
    overlap_w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    overlap_h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if overlap_w <= 0 or overlap_h <= 0:
        return 0.0
    intersection = overlap_w * overlap_h
    return float(intersection / (float(a[2] * a[3]) + float(b[2] * b[3]) - intersection))


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each row of an (N, 4) array of such boxes, vectorised for NMS."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = w * h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
