"""Draw what the device sees and thinks onto an image: face boxes, track ids, emotion and probability bars.

One renderer for every view (annotated `analyze` output now, the HDMI and
network previews later), so they all show the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

# One colour per emotion (BGR), fixed so a person learns them: warm for negative, green for happy.
COLORS = {
    "angry": (40, 40, 220), "disgust": (40, 140, 120), "fear": (160, 60, 160), "happy": (60, 200, 60),
    "sad": (200, 120, 40), "surprise": (0, 200, 230), "neutral": (190, 190, 190),
}


@dataclass(frozen=True)
class OverlayFace:
    box: tuple[int, int, int, int]  # x, y, w, h in pixels of the image drawn on
    labels: tuple[str, ...]
    probabilities: np.ndarray
    track_id: int | None = None


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, color: tuple[int, int, int]) -> None:
    # A dark outline keeps the label readable on any background.
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _bars(image: np.ndarray, face: OverlayFace, x: int, y: int, width: int, scale: float) -> None:
    row = max(8, int(12 * scale))
    for k, (name, p) in enumerate(zip(face.labels, face.probabilities)):
        top = y + k * row
        if top + row > image.shape[0]:
            break
        cv2.rectangle(image, (x, top), (x + width, top + row - 2), (40, 40, 40), -1)
        cv2.rectangle(image, (x, top), (x + int(width * float(p)), top + row - 2), COLORS.get(name, (255, 255, 255)), -1)
        _text(image, name[:3], (x + 2, top + row - 4), 0.3 * scale, (255, 255, 255))


def draw_faces(image: np.ndarray, faces: Sequence[OverlayFace]) -> np.ndarray:
    """A copy of the BGR image with every face annotated."""
    out = image.copy()
    scale = max(0.6, min(out.shape[:2]) / 480.0)
    for face in faces:
        x, y, w, h = face.box
        k = int(np.argmax(face.probabilities))
        name, color = face.labels[k], COLORS.get(face.labels[k], (255, 255, 255))
        cv2.rectangle(out, (x, y), (x + w, y + h), color, max(1, int(2 * scale)))
        prefix = f"#{face.track_id} " if face.track_id is not None else ""
        _text(out, f"{prefix}{name} {float(face.probabilities[k]):.0%}", (x, max(12, y - 6)), 0.5 * scale, color)
        bar_x = x + w + 4 if x + w + 4 + int(60 * scale) < out.shape[1] else max(0, x - int(64 * scale))
        _bars(out, face, bar_x, y, int(60 * scale), scale)
    return out
