"""Draw what the device sees and thinks: face boxes, track ids, emotion and confidence, probability bars, a HUD.

One renderer for every view (annotated `analyze` output, the HDMI preview, the
network preview), so they all show the same thing. It draws into a transparent
RGBA image the size of the picture it will cover, which is what picamera2's
`set_overlay` takes as is; `composite` lays it over a BGR frame for the views
that need finished pictures (JPEG files, the MJPEG stream), blending only the
rectangles the renderer drew in (a `Canvas` keeps them), so a composite costs
what was drawn rather than the frame's size.

    canvas = draw_overlay((w, h), faces_from_reading(reading, labels, frame.gray_to_image_scale), Hud(fps, mqtt))
    picture = composite(frame.image, canvas.pixels, canvas.dirty)   # or, in one call from the live state:
    picture = annotate_snapshot(live.snapshot(), live.labels)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import cv2
import numpy as np

if TYPE_CHECKING:  # the renderer itself needs neither; only the snapshot helpers take these types
    from emotion_edge.device.daemon.live import Snapshot
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


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1: the pixels x0 <= x < x1, y0 <= y < y1


class Canvas:
    """A transparent RGBA image that remembers the rectangles drawn on.

    The overlay covers a few percent of a frame, and the network preview composites one at up to its frame
    rate on the camera loop's CPU: blending only these rectangles makes compositing cost what was drawn, not
    the frame size. A rectangle may be larger than what it holds (blending a transparent pixel leaves it as it
    was), never smaller.
    """

    def __init__(self, width: int, height: int):
        self.pixels = np.zeros((height, width, 4), np.uint8)
        self._marks: list[Rect] = []

    def mark(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Record that pixels in [x0, x1) x [y0, y1) may have been drawn (clipped later, once, in `dirty`)."""
        self._marks.append((x0, y0, x1, y1))

    @property
    def dirty(self) -> list[Rect]:
        """The rectangles drawn in, clipped to the image; what `composite` needs to blend."""
        height, width = self.pixels.shape[:2]
        clipped = [(max(0, x0), max(0, y0), min(width, x1), min(height, y1)) for x0, y0, x1, y1 in self._marks]
        return [(x0, y0, x1, y1) for x0, y0, x1, y1 in clipped if x0 < x1 and y0 < y1]

    @contextlib.contextmanager
    def as_one(self) -> Iterator[None]:
        """Marks made inside become their bounding rectangle: one blend for a compact block (the bar chart)
        instead of one per bar and letter, each of which costs a few OpenCV calls."""
        start = len(self._marks)
        yield
        inside = self._marks[start:]
        if inside:
            xs0, ys0, xs1, ys1 = zip(*inside)
            self._marks[start:] = [(min(xs0), min(ys0), max(xs1), max(ys1))]

    def fill(self, corner: tuple[int, int], opposite: tuple[int, int], color: tuple[int, ...]) -> None:
        """A filled rectangle; both corners are drawn, as in cv2.rectangle."""
        cv2.rectangle(self.pixels, corner, opposite, color, -1)
        (xa, ya), (xb, yb) = corner, opposite
        self.mark(min(xa, xb), min(ya, yb), max(xa, xb) + 1, max(ya, yb) + 1)

    def outline(self, corner: tuple[int, int], opposite: tuple[int, int], color: tuple[int, ...],
                thickness: int) -> None:
        """A rectangle's outline, marked as its four edges: the inside (a face) is not blended at all."""
        cv2.rectangle(self.pixels, corner, opposite, color, thickness)
        (xa, ya), (xb, yb) = corner, opposite
        x0, y0, x1, y1 = min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)
        reach = thickness // 2 + 1  # a thick line spreads half its width either side of the edge, rounded up
        self.mark(x0 - reach, y0 - reach, x1 + reach + 1, y0 + reach + 1)  # top
        self.mark(x0 - reach, y1 - reach, x1 + reach + 1, y1 + reach + 1)  # bottom
        self.mark(x0 - reach, y0 - reach, x0 + reach + 1, y1 + reach + 1)  # left
        self.mark(x1 - reach, y0 - reach, x1 + reach + 1, y1 + reach + 1)  # right

    def text(self, text: str, origin: tuple[int, int], scale: float, color: tuple[int, ...], thickness: int) -> None:
        """Anti-aliased text with its baseline starting at `origin`, as cv2.putText."""
        cv2.putText(self.pixels, text, origin, FONT, scale, color, thickness, cv2.LINE_AA)
        (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
        # getTextSize measures the glyph boxes; the stroke reaches half its width beyond them, the
        # anti-aliased fringe one pixel more, and rounding another.
        pad = thickness // 2 + 2
        x, y = origin
        self.mark(x - pad, y - height - pad, x + width + pad, y + baseline + pad)


def _text(canvas: Canvas, text: str, origin: tuple[int, int], scale: float, color: RGB) -> None:
    # A dark outline keeps the label readable on any background. Anti-aliasing blends all four channels, so the
    # outline's soft edge gets a partial alpha over transparent pixels: that is the right straight-alpha value
    # for black, and the coloured text is drawn only over the opaque outline.
    canvas.text(text, origin, scale, _rgba((0, 0, 0)), 3)
    cv2.putText(canvas.pixels, text, origin, FONT, scale, _rgba(color), 1, cv2.LINE_AA)  # inside the outline's mark


def _bars(canvas: Canvas, face: OverlayFace, x: int, y: int, layout: Layout) -> None:
    """One row per emotion: a bar whose filled length is the probability, in the emotion's colour."""
    row, width = layout.bar_row, layout.bar_width
    with canvas.as_one():
        for k, (name, p) in enumerate(zip(face.labels, face.probabilities)):
            top = y + k * row
            if top + row > canvas.pixels.shape[0]:
                break
            canvas.fill((x, top), (x + width, top + row - 2), BAR_TRACK)
            filled = int(round(width * min(max(float(p), 0.0), 1.0)))
            if filled > 0:
                canvas.fill((x, top), (x + filled - 1, top + row - 2), _rgba(color_of(name)))
            _text(canvas, name[:3], (x + 2, top + row - 4), 0.3 * layout.scale, (255, 255, 255))


def bar_origin(face: OverlayFace, image_width: int, layout: Layout) -> tuple[int, int]:
    """Where a face's bar chart goes: right of the box, or left of it when the box is near the right edge."""
    x, y, w, _ = face.box
    right = x + w + 4
    if right + layout.bar_width < image_width:
        return right, max(0, y)
    return max(0, x - layout.bar_width - 4), max(0, y)


def _face(canvas: Canvas, face: OverlayFace, layout: Layout) -> None:
    x, y, w, h = face.box
    k = face.emotion
    name = face.labels[k]
    color = color_of(name)
    canvas.outline((x, y), (x + w, y + h), _rgba(color), layout.line)
    prefix = f"#{face.track_id} " if face.track_id is not None else ""
    _text(canvas, f"{prefix}{name} {float(face.probabilities[k]):.0%}", (x, max(12, y - 6)), 0.5 * layout.scale, color)
    _bars(canvas, face, *bar_origin(face, canvas.pixels.shape[1], layout), layout)


def _hud(canvas: Canvas, hud: Hud, layout: Layout) -> None:
    text = hud.text()
    if not text:
        return
    scale = 0.45 * layout.scale
    (tw, th), baseline = cv2.getTextSize(text, FONT, scale, 1)
    pad = max(2, int(4 * layout.scale))
    with canvas.as_one():
        canvas.fill((0, 0), (tw + 2 * pad, th + baseline + 2 * pad), HUD_BACKING)
        canvas.text(text, (pad, pad + th), scale, _rgba((255, 255, 255)), 1)


def draw_overlay(size: tuple[int, int], faces: Sequence[OverlayFace], hud: Hud | None = None) -> Canvas:
    """The overlay: its `pixels` are a (height, width, 4) uint8 RGBA image (every face annotated, the HUD top-left,
    transparent elsewhere), kept with the rectangles it was drawn in, for `composite`."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"overlay size must be positive, got {width}x{height}")
    canvas = Canvas(width, height)
    layout = Layout.for_size(width, height)
    for face in faces:
        _face(canvas, face, layout)
    if hud is not None:
        _hud(canvas, hud, layout)
    return canvas


def drawn_bounds(overlay_rgba: np.ndarray) -> list[Rect]:
    """The bounding rectangle of an overlay's non-transparent pixels (none when it is all transparent), for an
    overlay that comes without its Canvas: one scan of the alpha plane instead of tracking."""
    alpha = overlay_rgba[:, :, 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return []
    return [(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)]


def _blend(out: np.ndarray, image_bgr: np.ndarray, overlay_rgba: np.ndarray, rect: Rect) -> None:
    """out[rect] = image[rect] under overlay[rect] by its alpha: round((image * (255 - a) + colour * a) / 255).

    Reads `image_bgr` and writes `out`, so rectangles that overlap are blended once, not twice. OpenCV's integer
    ops rather than numpy's, which are about three times slower here (their innermost loop would run over a
    pixel's three channels). The products are exact in uint16 (their sum is at most 255 * 255), and the scale
    back to 8 bits rounds to nearest, exactly: no sum lies halfway between two multiples of 255.
    """
    x0, y0, x1, y1 = rect
    src = overlay_rgba[y0:y1, x0:x1]
    color = cv2.cvtColor(src, cv2.COLOR_RGBA2BGR)
    alpha = cv2.cvtColor(np.ascontiguousarray(src[:, :, 3]), cv2.COLOR_GRAY2BGR)  # one per channel
    mixed = cv2.add(cv2.multiply(image_bgr[y0:y1, x0:x1], 255 - alpha, dtype=cv2.CV_16U),
                    cv2.multiply(color, alpha, dtype=cv2.CV_16U))
    out[y0:y1, x0:x1] = cv2.convertScaleAbs(mixed, alpha=1 / 255)


def composite(image_bgr: np.ndarray, overlay_rgba: np.ndarray, regions: Sequence[Rect] | None = None) -> np.ndarray:
    """A new BGR image: the RGBA overlay laid over `image_bgr` (same size), blended by its alpha.

    `regions` (a Canvas's `dirty`) are the only rectangles blended; everything outside them must be transparent.
    Without them the bounding rectangle of the drawn pixels is found by scanning the overlay.
    """
    if overlay_rgba.shape[:2] != image_bgr.shape[:2] or overlay_rgba.shape[2:] != (4,):
        raise ValueError(f"overlay {overlay_rgba.shape} does not fit image {image_bgr.shape}")
    out = image_bgr.copy()
    for rect in drawn_bounds(overlay_rgba) if regions is None else regions:
        _blend(out, image_bgr, overlay_rgba, rect)
    return out


def draw_faces(image: np.ndarray, faces: Sequence[OverlayFace], hud: Hud | None = None) -> np.ndarray:
    """A copy of the BGR image with every face annotated (the renderer's overlay, composited)."""
    canvas = draw_overlay((image.shape[1], image.shape[0]), faces, hud)
    return composite(image, canvas.pixels, canvas.dirty)


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


def snapshot_canvas(snapshot: Snapshot, labels: tuple[str, ...], size: tuple[int, int],
                    hud: Hud | None = None) -> Canvas:
    """The overlay for a live snapshot at `size` (width, height), with the rectangles it was drawn in."""
    frame = snapshot.frame
    if frame is None:
        faces: list[OverlayFace] = []
    else:
        # Map gray -> drawn size directly: `size` may differ from the frame's image (a scaled preview).
        sx, sy = size[0] / frame.gray.shape[1], size[1] / frame.gray.shape[0]
        faces = faces_from_reading(snapshot.reading, labels, (sx, sy))
    return draw_overlay(size, faces, hud if hud is not None else snapshot_hud(snapshot))


def snapshot_overlay(snapshot: Snapshot, labels: tuple[str, ...], size: tuple[int, int],
                     hud: Hud | None = None) -> np.ndarray:
    """The RGBA overlay for a live snapshot at `size` (width, height), e.g. the camera's `main` stream."""
    return snapshot_canvas(snapshot, labels, size, hud).pixels


def annotate_snapshot(snapshot: Snapshot, labels: tuple[str, ...], hud: Hud | None = None) -> np.ndarray | None:
    """The snapshot's frame (BGR) with the overlay composited; None before the first frame."""
    frame = snapshot.frame
    if frame is None:
        return None
    height, width = frame.image.shape[:2]
    canvas = snapshot_canvas(snapshot, labels, (width, height), hud)
    return composite(frame.image, canvas.pixels, canvas.dirty)
