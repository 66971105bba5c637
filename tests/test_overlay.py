"""The one overlay renderer every preview uses: checked pixel by pixel for known states, and against a golden image."""

import numpy as np
import pytest
from helpers.golden import check_golden, save_doc
from helpers.live_fixtures import HAPPY, LABELS, SURPRISED, face, frame, live_with, reading
from helpers.photo import ASTRONAUT_FACE, astronaut_bgr
from PIL import Image

from emotion_edge.device.daemon.live import LiveState, Snapshot
from emotion_edge.device.overlay import (
    BAR_TRACK,
    COLORS,
    HUD_BACKING,
    Hud,
    Layout,
    OverlayFace,
    annotate_snapshot,
    bar_origin,
    composite,
    draw_overlay,
    faces_from_reading,
    snapshot_overlay,
)


def _rgba(label: str) -> tuple[int, int, int, int]:
    return (*COLORS[label], 255)


def _golden_overlay() -> np.ndarray:
    faces = [OverlayFace(ASTRONAUT_FACE, LABELS, HAPPY, track_id=1)]
    return draw_overlay((512, 512), faces, Hud(fps=14.8, mqtt="connected")).pixels


def test_overlay_matches_the_golden_image():
    overlay = _golden_overlay()
    # Anti-aliased text may shift a little between OpenCV releases; boxes and bars are checked exactly below.
    check_golden("overlay.png", Image.fromarray(overlay, "RGBA"), max_mismatch=0.02, tolerance=48)
    photo = astronaut_bgr()
    save_doc("overlay.jpg", Image.fromarray(composite(photo, overlay)[:, :, ::-1]))


def test_box_is_the_emotion_colour_and_everything_else_is_transparent():
    x, y, w, h = ASTRONAUT_FACE
    overlay = _golden_overlay()
    assert overlay.shape == (512, 512, 4) and overlay.dtype == np.uint8
    for point in [(y + h // 2, x), (y + h // 2, x + w), (y + h, x + w // 2)]:  # left, right and bottom edges
        assert tuple(overlay[point]) == _rgba("happy")
    assert overlay[y + 10 : y + h - 10, x + 10 : x + w - 10, 3].max() == 0  # the face itself stays visible
    assert overlay[y + h + 10 :, :, 3].max() == 0  # below the face and its bars: untouched
    assert overlay[40:, : x - 10, 3].max() == 0  # left of the face, under the HUD


def test_label_names_track_emotion_and_confidence():
    with_label = draw_overlay((512, 512), [OverlayFace(ASTRONAUT_FACE, LABELS, HAPPY, track_id=1)]).pixels
    x, y, w, _ = ASTRONAUT_FACE
    band = with_label[y - 25 : y - 2, x : x + w + 40, 3]
    assert (band > 0).sum() > 150  # "#1 happy 80%" sits just above the box
    other = draw_overlay((512, 512), [OverlayFace(ASTRONAUT_FACE, LABELS, HAPPY, track_id=12)]).pixels
    assert not np.array_equal(other[y - 25 : y - 2], with_label[y - 25 : y - 2])  # the id is part of the label


def test_bar_lengths_are_proportional_to_the_probabilities():
    probabilities = np.array([0.0, 0.0, 0.0, 0.6, 0.0, 0.0, 0.4], np.float32)
    item = OverlayFace((100, 100, 200, 200), LABELS, probabilities)
    size = (960, 960)  # large bars, so the filled part reaches past the row's three-letter name
    overlay = draw_overlay(size, [item]).pixels
    layout = Layout.for_size(*size)
    x0, y0 = bar_origin(item, size[0], layout)
    assert x0 == 100 + 200 + 4  # right of the box
    for k, (label, p) in enumerate(zip(LABELS, probabilities)):
        row = overlay[y0 + k * layout.bar_row + layout.bar_row // 2 - 1]
        filled = np.flatnonzero(np.all(row == _rgba(label), axis=1))
        if p == 0:
            assert filled.size == 0, label
            assert tuple(row[x0 + layout.bar_width // 2]) == BAR_TRACK or row[x0 + layout.bar_width // 2, 3] > 0
        else:
            assert filled.max() - x0 + 1 == round(layout.bar_width * p), label
            assert tuple(row[x0 + layout.bar_width]) == BAR_TRACK  # the unfilled rest of the track


def test_bars_move_left_of_a_face_at_the_right_edge():
    item = OverlayFace((560, 100, 70, 70), LABELS, SURPRISED)
    overlay = draw_overlay((640, 480), [item]).pixels
    x0, _ = bar_origin(item, 640, Layout.for_size(640, 480))
    assert x0 < 560
    assert overlay[110, x0 : x0 + 20, 3].max() > 0 and overlay[110, 635:, 3].max() == 0


def test_hud_shows_fps_and_mqtt_on_a_dark_backing_and_nothing_without_it():
    overlay = draw_overlay((640, 480), [], Hud(fps=9.5, mqtt="disconnected")).pixels
    assert tuple(overlay[1, 1]) == HUD_BACKING
    hud = overlay[:30, :260]
    assert ((hud[:, :, :3].min(axis=-1) > 200) & (hud[:, :, 3] > 200)).sum() > 40  # white text on it
    assert overlay[40:, :, 3].max() == 0
    fps_only = draw_overlay((640, 480), [], Hud(fps=9.5)).pixels
    assert (fps_only[:30, :, 3] > 0).sum() < (hud[:, :, 3] > 0).sum()  # a shorter line without the MQTT part
    assert draw_overlay((640, 480), [], Hud()).pixels.max() == 0
    assert draw_overlay((640, 480), []).pixels.max() == 0


def test_composite_blends_by_alpha_and_leaves_transparent_pixels_alone():
    image = np.full((4, 6, 3), 100, np.uint8)
    overlay = np.zeros((4, 6, 4), np.uint8)
    overlay[1, 1] = (255, 0, 0, 255)  # opaque red
    overlay[2, 3] = (0, 0, 200, 128)  # half-transparent blue
    out = composite(image, overlay)
    assert tuple(out[1, 1]) == (0, 0, 255)  # BGR
    assert tuple(out[2, 3]) == (round((100 * 127 + 200 * 128) / 255), round(100 * 127 / 255), round(100 * 127 / 255))
    untouched = np.ones((4, 6), bool)
    untouched[1, 1] = untouched[2, 3] = False
    assert np.all(out[untouched] == 100) and np.all(image == 100)  # the input is not modified
    assert np.array_equal(composite(image, np.zeros((4, 6, 4), np.uint8)), image)
    with pytest.raises(ValueError, match="does not fit"):
        composite(image, np.zeros((5, 6, 4), np.uint8))


def _full_frame_blend(image: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """The reference: every pixel blended, round((image * (255 - a) + colour * a) / 255) in exact integers."""
    alpha = overlay[:, :, 3:].astype(np.int64)
    return ((image * (255 - alpha) + overlay[:, :, 2::-1] * alpha + 127) // 255).astype(np.uint8)


def _random_overlay_state(rng: np.random.Generator) -> tuple[tuple[int, int], list[OverlayFace], Hud]:
    """Faces anywhere, partly off the picture too, with any track id and confidence, on any picture size."""
    width, height = [(160, 120), (320, 240), (640, 480), (1280, 720), (1920, 1080)][rng.integers(5)]
    faces = [OverlayFace((int(rng.integers(-40, width)), int(rng.integers(-40, height)),
                          int(rng.integers(8, width // 2)), int(rng.integers(8, height // 2))),
                         LABELS, rng.dirichlet(np.ones(len(LABELS))).astype(np.float32),
                         track_id=[None, 1, 42, 123456][rng.integers(4)])
             for _ in range(rng.integers(0, 4))]
    hud = [Hud(), Hud(fps=float(rng.uniform(0, 200))), Hud(fps=9.5, mqtt="disconnected"), Hud(mqtt="disabled")]
    return (width, height), faces, hud[rng.integers(4)]


def test_composite_blends_only_where_drawn_and_matches_a_full_frame_blend():
    # composite() skips everything outside the rectangles the renderer recorded: a rectangle that missed a
    # drawn pixel (a text stroke, a thick line's end) would leave it out of the picture, so compare with a
    # blend of every pixel on many random states.
    rng = np.random.default_rng(7)
    for _ in range(60):
        size, faces, hud = _random_overlay_state(rng)
        canvas = draw_overlay(size, faces, hud)
        image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        expected = _full_frame_blend(image, canvas.pixels)
        assert np.array_equal(composite(image, canvas.pixels, canvas.dirty), expected), (size, faces, hud)
        assert np.array_equal(composite(image, canvas.pixels), expected)  # without the rectangles: scans alpha


def test_the_rectangles_blended_leave_the_face_and_the_rest_of_the_frame_out():
    x, y, w, h = ASTRONAUT_FACE
    canvas = draw_overlay((512, 512), [OverlayFace(ASTRONAUT_FACE, LABELS, HAPPY, track_id=1)], Hud(14.8, "connected"))
    blended = np.zeros((512, 512), bool)
    for x0, y0, x1, y1 in canvas.dirty:
        blended[y0:y1, x0:x1] = True
    assert not blended[y + 10 : y + h - 10, x + 10 : x + w - 10].any()  # the box is blended as its four edges
    assert blended.mean() < 0.1  # the point: a composite costs what was drawn, not the frame


def test_reading_boxes_are_mapped_from_the_gray_image_to_the_picture():
    # On a Pi the pipeline sees the 640x360 lores stream; the preview shows the 1280x720 main stream.
    live = live_with(face(3, (100, 50, 80, 80), SURPRISED))
    picture = annotate_snapshot(live.snapshot(), LABELS)
    assert picture.shape == (720, 1280, 3)
    assert COLORS["surprise"] == (230, 200, 0)  # not a palindrome, so a channel-order mistake shows
    assert tuple(picture[100 + 80, 200]) == (0, 200, 230)  # BGR; left edge x = 2 * 100, mid-height y = 2 * (50 + 40)
    assert tuple(picture[100 + 80, 100]) == (90, 90, 90)  # the frame itself where nothing is drawn
    [mapped] = faces_from_reading(live.snapshot().reading, LABELS, (2.0, 2.0))
    assert mapped.box == (200, 100, 160, 160) and mapped.track_id == 3 and mapped.emotion == LABELS.index("surprise")


def test_overlay_for_a_scaled_preview_and_before_the_first_frame():
    live = live_with(face(3, (100, 50, 80, 80), HAPPY))
    small = snapshot_overlay(live.snapshot(), LABELS, (320, 180))
    assert small.shape == (180, 320, 4) and tuple(small[25 + 20, 50]) == _rgba("happy")  # gray / 2
    empty = LiveState(LABELS).snapshot()
    assert annotate_snapshot(empty, LABELS) is None
    only_hud = snapshot_overlay(empty, LABELS, (320, 180))
    assert only_hud[0, 0, 3] > 0 and only_hud[40:, :, 3].max() == 0  # "MQTT disabled" in the corner, no faces


def test_the_reported_emotion_is_the_smoothed_one_not_the_raw_argmax():
    held = face(1, (10, 10, 60, 60), SURPRISED)
    held = type(held)(held.track_id, held.box, held.box_norm, held.probabilities,
                      type(held.state)(LABELS.index("neutral"), 0.3, SURPRISED, False), False)
    [item] = faces_from_reading(reading(held), LABELS)
    overlay = draw_overlay((320, 240), [item]).pixels
    assert tuple(overlay[40, 10]) == _rgba("neutral")  # hysteresis still reports neutral


def test_snapshot_without_reading_draws_no_faces():
    snapshot = Snapshot(frame=frame((320, 240), (320, 240)), reading=None, mqtt="connected")
    picture = annotate_snapshot(snapshot, LABELS, Hud())
    assert np.all(picture == 90)
