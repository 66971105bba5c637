"""Non-maximum suppression on xyxy boxes, plain and MediaPipe's weighted variant."""

from __future__ import annotations

import numpy as np


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of an (N, 4) xyxy array."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = w * h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, weighted: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy NMS on (N, 4) xyxy boxes; returns (boxes, scores), best first.

    weighted=True is MediaPipe's variant: each kept box is the score-weighted
    mean of every box overlapping it by more than iou_threshold (itself
    included) and keeps the best score, which steadies boxes between frames.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    kept_boxes, kept_scores = [], []
    while len(boxes):
        overlap = _iou_one_to_many(boxes[0], boxes) > iou_threshold
        overlap[0] = True
        if weighted:
            w = scores[overlap]
            kept_boxes.append((boxes[overlap] * w[:, None]).sum(axis=0) / w.sum())
        else:
            kept_boxes.append(boxes[0])
        kept_scores.append(scores[0])
        boxes, scores = boxes[~overlap], scores[~overlap]
    if not kept_boxes:
        return np.zeros((0, 4)), np.zeros(0)
    return np.stack(kept_boxes), np.asarray(kept_scores)
