"""Non-maximum suppression on xyxy boxes, plain and MediaPipe's weighted variant."""

from __future__ import annotations

import numpy as np

from emotion_edge.device.geometry import iou_one_to_many


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
        overlap = iou_one_to_many(boxes[0], boxes) > iou_threshold
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
