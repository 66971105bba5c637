"""The detector a `DetectorConfig` names."""

from __future__ import annotations

from emotion_edge.device.detection.base import DetectorConfig, FaceDetector
from emotion_edge.device.detection.blazeface import BlazeFaceDetector
from emotion_edge.device.detection.haar import HaarDetector


def make_detector(config: DetectorConfig | None = None) -> FaceDetector:
    """The detector a config names; raises DetectorError when its model is unavailable."""
    config = config or DetectorConfig()
    if config.kind == "haar":
        return HaarDetector(config)
    return BlazeFaceDetector(config)
