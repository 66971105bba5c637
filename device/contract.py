"""The model contract: labels, input geometry and face-crop preprocessing.

Training, quantization and the device all import this module, so the Pi feeds
the model exactly the pixels it learned from. Nothing here may import
TensorFlow: it runs on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from emotion_edge.device.errors import EmotionEdgeError

# FER2013's label order; the integer in the CSV's `emotion` column indexes it.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

INPUT_SIZE = 48
# Versioned so a model trained under one preprocessing cannot silently be fed
# another: bump the suffix whenever normalize() or crop geometry changes.
PREPROCESSING_ID = "gray48-unit-v1"
# FER2013 crops are tight faces with a little forehead and chin; detector boxes
# are tighter, so the device widens them by this fraction of the box size.
DEFAULT_FACE_MARGIN = 0.15


class ContractError(EmotionEdgeError, ValueError):
    """A model's contract is missing, malformed or contradicts the model."""


@dataclass(frozen=True)
class ModelContract:
    """What a model expects and what its outputs mean."""

    labels: tuple[str, ...] = EMOTIONS
    input_size: int = INPUT_SIZE
    channels: int = 1
    preprocessing: str = PREPROCESSING_ID
    face_margin: float = DEFAULT_FACE_MARGIN
    # Average each face's probabilities with its mirror image's (one invoke holds both). A property of the
    # model, not a runtime option: its accuracy and int8 parity were measured this way, and averaging two
    # views halves the near-ties that int8 rounding flips (see models/README.md).
    flip_average: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        unknown = [name for name in self.labels if name not in EMOTIONS]
        if unknown:
            raise ContractError(f"contract field 'labels': unknown emotion(s) {unknown}; known: {list(EMOTIONS)}")
        if len(set(self.labels)) != len(self.labels) or len(self.labels) < 2:
            raise ContractError(f"contract field 'labels': need at least two distinct labels, got {list(self.labels)}")
        if self.input_size < 8:
            raise ContractError(f"contract field 'input_size': {self.input_size} is too small")
        if self.channels != 1:
            raise ContractError(f"contract field 'channels': only grayscale (1) is supported, got {self.channels}")
        if self.preprocessing != PREPROCESSING_ID:
            raise ContractError(
                f"contract field 'preprocessing': model expects {self.preprocessing!r} but this "
                f"emotion-edge implements {PREPROCESSING_ID!r}; retrain or upgrade emotion-edge"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_size, self.input_size, self.channels)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def labels_for(class_names: Sequence[str] | None) -> tuple[str, ...]:
    """Validate a class subset (e.g. the seed paper's 5-class model) and keep FER2013 order."""
    if not class_names:
        return EMOTIONS
    wanted = [name.strip().lower() for name in class_names]
    unknown = [name for name in wanted if name not in EMOTIONS]
    if unknown:
        raise ContractError(f"unknown emotion(s) {unknown}; choose from {', '.join(EMOTIONS)}")
    return tuple(name for name in EMOTIONS if name in wanted)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any uint8 image (gray, BGR, BGRA) as a 2-D gray image, using OpenCV's BT.601 weights."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    import cv2  # the device always has OpenCV; imported here so training can use normalize() without it

    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def resize_face(gray: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Resize a gray face crop to the model's square input; INTER_AREA avoids aliasing when shrinking."""
    if gray.shape[:2] == (size, size):
        return gray
    import cv2

    interpolation = cv2.INTER_AREA if min(gray.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interpolation)


def square_box(box: tuple[int, int, int, int], margin: float = DEFAULT_FACE_MARGIN) -> tuple[int, int, int]:
    """Widen an (x, y, w, h) detector box by `margin` into a square (x0, y0, side); may extend past the frame."""
    x, y, w, h = box
    side = max(1, int(round(max(w, h) * (1.0 + 2.0 * margin))))
    x0 = int(round(x + w / 2.0 - side / 2.0))
    y0 = int(round(y + h / 2.0 - side / 2.0))
    return x0, y0, side


def crop_face(
    frame: np.ndarray,
    box: tuple[int, int, int, int],
    size: int = INPUT_SIZE,
    margin: float = DEFAULT_FACE_MARGIN,
) -> np.ndarray:
    """Cut one face out of a camera frame as the model's uint8 input crop.

    A face at the frame's edge is padded by replicating the border rather than
    clipped, so its geometry (and aspect) stays what the model was trained on.
    """
    gray = to_gray(frame)
    x0, y0, side = square_box(box, margin)
    height, width = gray.shape
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y0 + side - height), max(0, x0 + side - width)
    inside = gray[max(0, y0) : min(height, y0 + side), max(0, x0) : min(width, x0 + side)]
    if inside.size == 0:
        raise ValueError(f"face box {box} lies outside the {width}x{height} frame")
    if top or left or bottom or right:
        import cv2

        inside = cv2.copyMakeBorder(inside, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return resize_face(inside, size)


def with_mirrors(faces: np.ndarray) -> np.ndarray:
    """(N, S, S[, 1]) crops followed by their left-right mirrors: 2N crops for one flip-averaged invoke."""
    faces = np.asarray(faces)
    return np.concatenate([faces, faces[:, :, ::-1]])


def average_mirrors(probs: np.ndarray) -> np.ndarray:
    """Probabilities of 2N crops laid out as with_mirrors() made them -> the N faces' averages."""
    half = probs.shape[0] // 2
    return (probs[:half] + probs[half:]) / 2.0


def normalize(faces: np.ndarray) -> np.ndarray:
    """uint8 crops (N, S, S) or (N, S, S, 1) -> float32 (N, S, S, 1) in [0, 1]: the model's input."""
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = faces[..., np.newaxis]
    if faces.ndim != 4 or faces.shape[-1] != 1:
        raise ValueError(f"expected face crops shaped (N, S, S) or (N, S, S, 1), got {faces.shape}")
    return faces.astype(np.float32) * np.float32(1.0 / 255.0)
