"""Draw what the device sees and thinks: face boxes, track ids, emotion and confidence, probability bars, a HUD.

One renderer for every view (annotated `analyze` output, the HDMI preview, the
network preview), so they all show the same thing. It draws into a transparent
RGBA image the size of the picture it will cover, which is what picamera2's
`set_overlay` takes as is; `composite` lays it over a BGR frame for the views
that need finished pictures (JPEG files, the MJPEG stream).

    overlay = render_overlay((w, h), faces_from_reading(reading, labels, frame.gray_to_image_scale), Hud(fps, mqtt))
    picture = composite(frame.image, overlay)      # or, in one call from the live state:
    picture = annotate_snapshot(live.snapshot(), live.labels)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

if TYPE_CHECKING:  # the renderer itself needs neither; only the snapshot helpers take these types
    from emotion_edge.device.live import Snapshot
    from emotion_edge.device.pipeline import FrameReading

RGB = tuple[int, int, int]

# One colour per emotion (RGB), fixed so a person learns them: warm for negative, green for happy.
COLORS: dict[str, RGB] = {
    "angry": (220, 40, 40), "disgust": (120, 140, 40), "fear": (160, 60, 160), "happy": (60, 200, 60),
    "sad": (40, 120, 200), "surprise": (230, 200, 0), "neutral": (190, 190, 190),
}
UNKNOWN_COLOR: RGB = (255, 255, 255)
BAR_TRACK = (40, 40, 40, 200)  # the unfilled part of a probability bar: dark, slightly see-through
HUD_BACKING = (0, 0, 0, 160)  # behind the corner text, so it reads on a bright scene
OPAQUE = 255
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class OverlayFace:
    box: tuple[int, int, int, int]  # x, y, w, h in pixels of the image drawn on
    labels: tuple[str, ...]
    probabilities: np.ndarray
    track_id: int | None = None
    # The emotion to name: a tracked face's smoothed, hysteresis-held one, which can trail the argmax.
    dominant: int | None = None

    @property
    def emotion(self) -> int:
        return int(np.argmax(self.probabilities)) if self.dominant is None else self.dominant


@dataclass(frozen=True)
class Hud:
    """The corner line: the pipeline's frame rate and the MQTT connection; None leaves an item out."""

    fps: float | None = None
    mqtt: str | None = None

    def text(self) -> str:
        parts = ([f"{self.fps:.1f} fps"] if self.fps is not None else []) + (
            [f"MQTT {self.mqtt}"] if self.mqtt is not None else [])
        return "  ".join(parts)


@dataclass(frozen=True)
class Layout:
    """Sizes that grow with the picture, so the overlay reads the same on a 320-pixel thumbnail and on 1080p."""

    scale: float

    @classmethod
    def for_size(cls, width: int, height: int) -> Layout:
        return cls(max(0.6, min(width, height) / 480.0))

    @property
    def line(self) -> int:
        return max(1, int(2 * self.scale))

    @property
    def bar_width(self) -> int:
        return int(60 * self.scale)

    @property
    def bar_row(self) -> int:
        return max(8, int(12 * self.scale))


def color_of(label: str) -> RGB:
    return COLORS.get(label, UNKNOWN_COLOR)


def _rgba(color: RGB) -> tuple[int, int, int, int]:
    return (*color, OPAQUE)


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float, color: RGB) -> None:
    # A dark outline keeps the label readable on any background. Anti-aliasing blends all four channels, so the
    # outline's soft edge gets a partial alpha over transparent pixels: that is the right straight-alpha value
    # for black, and the coloured text is drawn only over the opaque outline.
    cv2.putText(canvas, text, origin, FONT, scale, _rgba((0, 0, 0)), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, FONT, scale, _rgba(color), 1, cv2.LINE_AA)


def _bars(canvas: np.ndarray, face: OverlayFace, x: int, y: int, layout: Layout) -> None:
    """One row per emotion: a bar whose filled length is the probability, in the emotion's colour."""
    row, width = layout.bar_row, layout.bar_width
    for k, (name, p) in enumerate(zip(face.labels, face.probabilities)):
        top = y + k * row
        if top + row > canvas.shape[0]:
            break
        cv2.rectangle(canvas, (x, top), (x + width, top + row - 2), BAR_TRACK, -1)
        filled = int(round(width * min(max(float(p), 0.0), 1.0)))
        if filled > 0:
            cv2.rectangle(canvas, (x, top), (x + filled - 1, top + row - 2), _rgba(color_of(name)), -1)
        _text(canvas, name[:3], (x + 2, top + row - 4), 0.3 * layout.scale, (255, 255, 255))


def bar_origin(face: OverlayFace, image_width: int, layout: Layout) -> tuple[int, int]:
    """Where a face's bar chart goes: right of the box, or left of it when the box is near the right edge."""
    x, y, w, _ = face.box
    right = x + w + 4
    if right + layout.bar_width < image_width:
        return right, max(0, y)
    return max(0, x - layout.bar_width - 4), max(0, y)


def _face(canvas: np.ndarray, face: OverlayFace, layout: Layout) -> None:
    x, y, w, h = face.box
    k = face.emotion
    name = face.labels[k]
    color = color_of(name)
    cv2.rectangle(canvas, (x, y), (x + w, y + h), _rgba(color), layout.line)
    prefix = f"#{face.track_id} " if face.track_id is not None else ""
    _text(canvas, f"{prefix}{name} {float(face.probabilities[k]):.0%}", (x, max(12, y - 6)), 0.5 * layout.scale, color)
    _bars(canvas, face, *bar_origin(face, canvas.shape[1], layout), layout)


def _hud(canvas: np.ndarray, hud: Hud, layout: Layout) -> None:
    text = hud.text()
    if not text:
        return
    scale = 0.45 * layout.scale
    (tw, th), baseline = cv2.getTextSize(text, FONT, scale, 1)
    pad = max(2, int(4 * layout.scale))
    cv2.rectangle(canvas, (0, 0), (tw + 2 * pad, th + baseline + 2 * pad), HUD_BACKING, -1)
    cv2.putText(canvas, text, (pad, pad + th), FONT, scale, _rgba((255, 255, 255)), 1, cv2.LINE_AA)


def render_overlay(size: tuple[int, int], faces: Sequence[OverlayFace], hud: Hud | None = None) -> np.ndarray:
    """A (height, width, 4) uint8 RGBA image: every face annotated, the HUD top-left, transparent elsewhere."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"overlay size must be positive, got {width}x{height}")
    canvas = np.zeros((height, width, 4), np.uint8)
    layout = Layout.for_size(width, height)
    for face in faces:
        _face(canvas, face, layout)
    if hud is not None:
        _hud(canvas, hud, layout)
    return canvas


def composite(image_bgr: np.ndarray, overlay_rgba: np.ndarray) -> np.ndarray:
    """A new BGR image: the RGBA overlay laid over `image_bgr` (same size), blended by its alpha."""
    if overlay_rgba.shape[:2] != image_bgr.shape[:2] or overlay_rgba.shape[2:] != (4,):
        raise ValueError(f"overlay {overlay_rgba.shape} does not fit image {image_bgr.shape}")
    out = image_bgr.copy()
    # Blend only the rows and columns the overlay touches: most of a frame is transparent, and the preview
    # threads composite at up to camera rate, so the untouched area should cost nothing.
    alpha = overlay_rgba[:, :, 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return out
    region = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    a = alpha[region][:, :, None].astype(np.uint16)
    color = overlay_rgba[region][:, :, 2::-1].astype(np.uint16)  # RGB -> BGR
    out[region] = ((out[region].astype(np.uint16) * (255 - a) + color * a + 127) // 255).astype(np.uint8)
    return out


def draw_faces(image: np.ndarray, faces: Sequence[OverlayFace], hud: Hud | None = None) -> np.ndarray:
    """A copy of the BGR image with every face annotated (the renderer's overlay, composited)."""
    return composite(image, render_overlay((image.shape[1], image.shape[0]), faces, hud))


def faces_from_reading(reading: FrameReading | None, labels: tuple[str, ...],
                       gray_to_image_scale: tuple[float, float] = (1.0, 1.0)) -> list[OverlayFace]:
    """A tracked frame's faces for the renderer, with their smoothed emotions, boxes mapped into the image.

    The pipeline's boxes are in the gray image's pixels; on a Pi that is the smaller `lores` stream, so
    `gray_to_image_scale` (Frame.gray_to_image_scale) maps them onto the `main` stream the preview shows.
    """
    if reading is None:
        return []
    sx, sy = gray_to_image_scale
    return [OverlayFace((int(round(f.box.x * sx)), int(round(f.box.y * sy)), int(round(f.box.w * sx)),
                         int(round(f.box.h * sy))), labels, f.state.probabilities, f.track_id, f.state.dominant)
            for f in reading.faces]


def snapshot_hud(snapshot: Snapshot, fps: float | None = None) -> Hud:
    """The HUD for a live snapshot; `fps` overrides the daemon's periodic stats figure with a fresher one."""
    stats_fps = snapshot.stats.get("fps")
    return Hud(fps if fps is not None else (float(stats_fps) if stats_fps is not None else None), snapshot.mqtt)


def snapshot_overlay(snapshot: Snapshot, labels: tuple[str, ...], size: tuple[int, int],
                     hud: Hud | None = None) -> np.ndarray:
    """The RGBA overlay for a live snapshot at `size` (width, height), e.g. the camera's `main` stream."""
    frame = snapshot.frame
    if frame is None:
        faces: list[OverlayFace] = []
    else:
        # Map gray -> drawn size directly: `size` may differ from the frame's image (a scaled preview).
        sx, sy = size[0] / frame.gray.shape[1], size[1] / frame.gray.shape[0]
        faces = faces_from_reading(snapshot.reading, labels, (sx, sy))
    return render_overlay(size, faces, hud if hud is not None else snapshot_hud(snapshot))


def annotate_snapshot(snapshot: Snapshot, labels: tuple[str, ...], hud: Hud | None = None) -> np.ndarray | None:
    """The snapshot's frame (BGR) with the overlay composited; None before the first frame."""
    frame = snapshot.frame
    if frame is None:
        return None
    height, width = frame.image.shape[:2]
    return composite(frame.image, snapshot_overlay(snapshot, labels, (width, height), hud))
