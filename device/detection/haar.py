"""OpenCV's frontal-face Haar cascade, shipped inside the opencv-python(-headless) wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotion_edge.device.detection.base import (
    HAAR_CASCADE,
    Detection,
    DetectorConfig,
    DetectorError,
    _as_gray,
    _to_detections,
)
from emotion_edge.device.detection.nms import non_max_suppression

# ----------------------------------------------------------------------------- Haar


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on a histogram-equalized frame."""

    # The cascade works on gray; a full-resolution colour frame would only cost more.
    prefers_color = False

    def __init__(self, config: DetectorConfig | None = None):
        import cv2

        self.config = config or DetectorConfig(kind="haar")
        if self.config.model_path is not None:
            path = Path(self.config.model_path)
        else:
            path = Path(cv2.data.haarcascades) / HAAR_CASCADE
        if not path.is_file():
            raise DetectorError(
                f"{path}: no such Haar cascade file"
                + ("" if self.config.model_path else "; reinstall opencv-python-headless, whose wheel ships it")
            )
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"{path}: OpenCV could not load it as a cascade classifier (corrupt or not a cascade XML)")
        self.path = path
        cv2.setNumThreads(self.config.threads)
        self._scores_supported = True

    def _raw_detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        kwargs = dict(scaleFactor=c.scale_factor, minNeighbors=c.min_neighbors, minSize=(c.min_face, c.min_face))
        if self._scores_supported:
            try:
                rects, _levels, weights = self._cascade.detectMultiScale3(gray, outputRejectLevels=True, **kwargs)
                rects = np.asarray(rects, np.float64).reshape(-1, 4)
                weights = np.asarray(weights, np.float64).reshape(-1)
                if len(weights) == len(rects):
                    return rects, weights
            except Exception:  # older/other OpenCV builds: detectMultiScale3 missing or failing
                pass
            self._scores_supported = False
        rects = np.asarray(self._cascade.detectMultiScale(gray, **kwargs), np.float64).reshape(-1, 4)
        return rects, np.ones(len(rects))

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a gray frame; a BGR frame is converted to gray first (the cascade works on gray)."""
        import cv2

        gray = _as_gray(image)
        if gray.size == 0:
            return []
        rects, scores = self._raw_detect(cv2.equalizeHist(gray))
        if not len(rects):
            return []
        xyxy = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        boxes, scores = non_max_suppression(xyxy, scores, self.config.nms_iou, weighted=False)
        height, width = gray.shape
        return _to_detections(boxes, scores, width, height, self.config.min_face)
