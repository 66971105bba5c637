"""The device pipeline end to end on real face photos (scikit-image ships them), with the shipped int8 model."""

import hashlib
import json

import cv2
import numpy as np
import pytest
from helpers.photo import astronaut_bgr as _astronaut_bgr
from helpers.photo import png_bomb

from emotion_edge.device.config import PipelineConfig
from emotion_edge.device.detection import DetectorConfig, make_detector
from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.pipeline import FacePipeline
from emotion_edge.device.sources import Frame
from emotion_edge.device.tracking import TrackerConfig
from emotion_edge.main import main


@pytest.fixture(scope="module")
def astronaut_bgr() -> np.ndarray:
    return _astronaut_bgr()


@pytest.fixture
def astronaut_jpg(tmp_path, astronaut_bgr):
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), astronaut_bgr)
    return path


@pytest.fixture(scope="module")
def classifier():
    return EmotionClassifier(packaged_model_path())


def _analyze_json(capsys, *args) -> tuple[int, list]:
    code = main(["analyze", *map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_shipped_model_reads_a_smiling_face_as_happy(capsys, astronaut_jpg):
    code, [result] = _analyze_json(capsys, astronaut_jpg)
    assert code == 0
    assert result["id"] == "sha256:" + hashlib.sha256(astronaut_jpg.read_bytes()).hexdigest()
    assert (result["width"], result["height"]) == (512, 512) and result["kind"] == "image"
    [face] = result["faces"]
    assert face["emotion"] == "happy" and face["confidence"] > 0.5
    assert set(face["probabilities"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=0.03)
    box, norm = face["box"], face["box_normalized"]
    assert 150 < box["x"] < 200 and 40 < box["y"] < 100  # her face, not the flag or the helmet
    assert norm["x"] == pytest.approx(box["x"] / 512, abs=1e-3) and 0 < norm["w"] < 1


def test_bad_file_is_an_error_record_and_the_others_still_run(capsys, tmp_path, astronaut_jpg):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    code, results = _analyze_json(capsys, text, astronaut_jpg, tmp_path / "missing.png")
    assert code == 1
    assert results[0]["error"]["code"] == "not_an_image" and "notes.jpg" in results[0]["error"]["message"]
    assert len(results[1]["faces"]) == 1
    assert results[2]["error"]["code"] == "unreadable"


def test_image_without_faces_is_not_an_error(capsys, tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 127, np.uint8))
    code, [result] = _analyze_json(capsys, blank)
    assert code == 0 and result["faces"] == []


def test_annotated_image_and_face_crops(tmp_path, astronaut_jpg, astronaut_bgr):
    assert main(["analyze", str(astronaut_jpg), "--annotate", str(tmp_path / "ann"), "--crops", str(tmp_path / "crops")]) == 0
    [annotated] = list((tmp_path / "ann").iterdir())
    drawn = cv2.imread(str(annotated))
    assert drawn.shape == astronaut_bgr.shape
    assert np.abs(drawn.astype(int) - astronaut_bgr).mean() > 0.5  # something was drawn
    [crop] = list((tmp_path / "crops").iterdir())
    assert cv2.imread(str(crop)).shape == (112, 112, 3)


def _frame(canvas: np.ndarray, index: int, t: float) -> Frame:
    return Frame(image=canvas, gray=cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), timestamp=t, index=index)


def _canvas() -> np.ndarray:
    return np.full((480, 640, 3), 90, np.uint8)


def test_pipeline_keeps_one_id_for_a_moving_face_and_ends_it_when_gone(classifier, astronaut_bgr):
    face = astronaut_bgr[0:300, 80:380]  # head and shoulders, in colour like a camera frame
    pipeline = FacePipeline(make_detector(DetectorConfig()), classifier, PipelineConfig(detect_every=2),
                            TrackerConfig(max_missed=2, max_age_s=0.5))
    readings = []
    for i in range(8):  # the face slides right 6 px per frame at 10 fps
        canvas = _canvas()
        canvas[90:390, 60 + 6 * i : 360 + 6 * i] = face
        readings.append(pipeline.process(_frame(canvas, i, i * 0.1)))
    ids = {f.track_id for r in readings for f in r.faces}
    assert ids == {1} and all(len(r.faces) == 1 for r in readings)
    assert [r.detected for r in readings[:4]] == [True, False, True, False]
    assert readings[0].faces[0].is_new and not readings[2].faces[0].is_new
    assert readings[-1].faces[0].state.dominant == classifier.labels.index("happy")
    ended = []
    for i in range(8, 16):  # the face leaves
        ended += pipeline.process(_frame(_canvas(), i, i * 0.1)).ended_tracks
    assert ended == [1]
    canvas = _canvas()
    canvas[90:390, 300:600] = face
    back = pipeline.process(_frame(canvas, 16, 1.6))
    assert [f.track_id for f in back.faces] == [2] and back.faces[0].is_new


def test_analyze_video_follows_people_across_frames(capsys):
    from pathlib import Path

    demo = Path(__file__).parent.parent / "examples" / "demo.mp4"
    code, [result] = _analyze_json(capsys, demo)
    assert code == 0 and result["kind"] == "video" and len(result["frames"]) == 90
    assert result["id"] == "sha256:" + hashlib.sha256(demo.read_bytes()).hexdigest()
    # The person steps out of view for frames 55-64 and comes back: two tracks, never two at once.
    assert {f["track_id"] for fr in result["frames"] for f in fr["faces"]} == {1, 2}
    assert all(len(fr["faces"]) <= 1 for fr in result["frames"])
    assert all(fr["faces"] == [] for fr in result["frames"][56:64])


def test_analyze_refuses_an_image_over_the_pixel_limit_by_its_header_naming_the_limit(capsys, tmp_path,
                                                                                        astronaut_jpg):
    # The HTTP API's limit (24,000,000 by default) now serves the CLI too; before, this decoded 30 M pixels
    # (and a 30000x30000 file took 6 GB).
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(6000, 5000))
    code, results = _analyze_json(capsys, bomb, astronaut_jpg)
    assert code == 1
    assert results[0]["error"]["code"] == "too_many_pixels"
    message = results[0]["error"]["message"]
    assert "6000x5000" in message and "24,000,000" in message and "--max-pixels" in message
    assert results[1]["faces"]  # the other file is still analyzed
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_bomb(30000, 30000))  # past Pillow's own ceiling too: still our error, our limit
    code, results = _analyze_json(capsys, huge, "--max-pixels", 1000)
    assert code == 1 and results[0]["error"]["code"] == "too_many_pixels" and "1,000" in results[0]["error"]["message"]


def test_a_single_view_is_the_face_or_its_mirror_and_the_two_average_to_the_contracts_reading(classifier):
    assert classifier.contract.flip_average  # the shipped model's contract, which these views split in two
    faces = np.stack([cv2.resize(cv2.cvtColor(_astronaut_bgr(), cv2.COLOR_BGR2GRAY)[40:280, 140:320], (48, 48)),
                      np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)])
    original, mirror = classifier.classify(faces, "original"), classifier.classify(faces, "mirror")
    np.testing.assert_array_equal(mirror, classifier.classify(faces[:, :, ::-1].copy(), "original"))
    np.testing.assert_allclose((original + mirror) / 2, classifier.classify(faces), atol=1e-6)
    with pytest.raises(ValueError, match="view must be None, 'original' or 'mirror'"):
        classifier.classify(faces, "both")


@pytest.mark.parametrize("mirrors", ["together", "alternate"])
def test_mirrors_alternate_shows_the_face_then_its_mirror_and_together_shows_both(classifier, mirrors):
    """Alternating halves the crops per frame; each frame's reading is then one view, taking turns."""
    from emotion_edge.device.contract import crop_face

    face = cv2.resize(_astronaut_bgr()[0:300, 100:400], (300, 300))
    pipeline = FacePipeline(make_detector(DetectorConfig()), classifier, PipelineConfig(mirrors=mirrors, classify_every=1))
    readings = []
    for i in range(4):  # a still face, detected on every frame
        canvas = _canvas()
        canvas[90:390, 160:460] = face
        frame = _frame(canvas, i, i * 0.1)
        reading = pipeline.process(frame)
        [seen] = reading.faces
        crop = crop_face(frame.gray, seen.box.as_xywh(), margin=classifier.contract.face_margin)[None]
        views = [None, None] if mirrors == "together" else ["original", "mirror"]
        np.testing.assert_array_equal(seen.probabilities, classifier.classify(crop, views[i % 2])[0])
        readings.append(reading)
    assert {f.track_id for r in readings for f in r.faces} == {1}


def test_detecting_every_third_frame_reads_detection_frames_as_every_frame_does_and_coasts_only_found_faces(classifier):
    face = _astronaut_bgr()[0:300, 100:400]
    frames = []
    for i in range(9):  # the face slides 6 px a frame at 10 fps, and is gone from frame 6 on
        canvas = _canvas()
        if i < 6:
            canvas[90:390, 60 + 6 * i : 360 + 6 * i] = face
        frames.append(_frame(canvas, i, i * 0.1))
    every = [FacePipeline(make_detector(DetectorConfig()), classifier, PipelineConfig(detect_every=n, classify_every=1))
             for n in (1, 3)]
    by_1, by_3 = ([p.process(f) for f in frames] for p in every)
    assert [r.detected for r in by_3] == [True, False, False] * 3
    for a, b in zip(by_1[:6:3], by_3[:6:3]):  # where both detect, the same boxes and the same model outputs
        assert [f.box for f in a.faces] == [f.box for f in b.faces]
        np.testing.assert_array_equal(a.faces[0].probabilities, b.faces[0].probabilities)
    assert all(len(r.faces) == 1 and r.faces[0].track_id == 1 for r in by_3[:6])  # coasting between detections
    # Frame 6's detection misses the face: frames 7 and 8 classify nothing rather than the wall where it was.
    assert [len(r.faces) for r in by_3[6:]] == [0, 0, 0]


@pytest.mark.parametrize("detect_every", [1, 2, 3])
def test_a_face_that_leaves_ends_its_track_as_many_frames_later_at_any_cadence(classifier, detect_every):
    """[tracker] max_missed counts frames; the pipeline hands the tracker the matching number of rounds."""
    from emotion_edge.device.pipeline import missed_rounds

    assert [missed_rounds(5, n) for n in (1, 2, 3)] == [5, 3, 2] and missed_rounds(1, 2) == 1
    face = _astronaut_bgr()[0:300, 100:400]
    pipeline = FacePipeline(make_detector(DetectorConfig()), classifier, PipelineConfig(detect_every=detect_every),
                            TrackerConfig(max_missed=5, max_age_s=60.0))
    ended_at = None
    for i in range(24):  # present for frames 0-5, gone from frame 6
        canvas = _canvas()
        if i < 6:
            canvas[90:390, 160:460] = face
        if pipeline.process(_frame(canvas, i, i * 0.1)).ended_tracks == (1,):
            ended_at = i
    # Every frame: the 6th miss (frame 11) ends it; every Nth frame: a detection from frame 11 on, within N frames.
    assert ended_at is not None and 11 <= ended_at < 11 + detect_every
