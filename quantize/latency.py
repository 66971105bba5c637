"""Per-face latency of an int8 model, as the model card (quantize) and bench/latency.py measure it."""

from __future__ import annotations

import time

import numpy as np

from emotion_edge.device.model.classifier import EmotionClassifier


def ms_per_face(classifier: EmotionClassifier, faces: np.ndarray, runs: int = 200) -> float:
    """Median milliseconds per face when `faces` go through one invoke, after warm-up."""
    for _ in range(10):
        classifier.classify(faces)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.classify(faces)
        samples.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(samples)) / len(faces)
