"""Known pipeline states for the display tests: frames, readings and live snapshots built by hand."""

from __future__ import annotations

import numpy as np

from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.geometry import Box
from emotion_edge.device.pipeline import FaceReading, FrameReading
from emotion_edge.device.smoothing import SmoothedState
from emotion_edge.device.sources import Frame

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
HAPPY = np.array([0.02, 0.01, 0.02, 0.80, 0.03, 0.04, 0.08], np.float32)
SURPRISED = np.array([0.05, 0.0, 0.15, 0.05, 0.0, 0.70, 0.05], np.float32)


def face(track_id: int, box: tuple[float, float, float, float], probabilities: np.ndarray,
         gray_shape: tuple[int, int] = (360, 640)) -> FaceReading:
    """One tracked face; `box` (x, y, w, h) in gray-image pixels, reported emotion = the argmax."""
    k = int(np.argmax(probabilities))
    height, width = gray_shape
    x, y, w, h = box
    return FaceReading(track_id, Box(x, y, w, h), (x / width, y / height, w / width, h / height), probabilities,
                       SmoothedState(k, float(probabilities[k]), probabilities, False), False)


def reading(*faces: FaceReading, index: int = 0) -> FrameReading:
    return FrameReading(index, float(index), tuple(faces), (), True)


def frame(image_size: tuple[int, int] = (1280, 720), gray_size: tuple[int, int] = (640, 360), index: int = 0,
          level: int = 90) -> Frame:
    """A flat gray frame: the `main` image at `image_size` and a `lores`-sized gray image, as on a Pi."""
    (iw, ih), (gw, gh) = image_size, gray_size
    return Frame(image=np.full((ih, iw, 3), level, np.uint8), gray=np.full((gh, gw), level, np.uint8),
                 timestamp=float(index), index=index)


def live_with(*faces: FaceReading, index: int = 0, image_size=(1280, 720), gray_size=(640, 360)) -> LiveState:
    live = LiveState(LABELS)
    live.update_frame(frame(image_size, gray_size, index), reading(*faces, index=index))
    return live
