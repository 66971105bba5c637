"""`[pipeline] classify_every`: a tracked face is classified on every Nth frame (a new face at once), its smoother
fed its last output in between; with 1 (the option off) every face is classified on every frame as before."""

import cv2
import numpy as np
import pytest
from helpers.photo import astronaut_bgr

from emotion_edge.device.config import PipelineConfig
from emotion_edge.device.contract import crop_face
from emotion_edge.device.detection import DetectorConfig, make_detector
from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.pipeline import FacePipeline
from emotion_edge.device.smoothing import EmotionSmoother
from emotion_edge.device.sources import Frame


@pytest.fixture(scope="module")
def classifier():
    return EmotionClassifier(packaged_model_path())


def _frames(count: int, second_from: int) -> list[Frame]:
    """A still face on the left from frame 0; a second one (the same photo, mirrored) on the right from
    `second_from` on, so it appears on a frame the cadence would skip."""
    face = astronaut_bgr()[0:300, 100:400]
    frames = []
    for i in range(count):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[90:390, 10:310] = face
        if i >= second_from:
            canvas[90:390, 330:630] = face[:, ::-1]
        frames.append(Frame(image=canvas, gray=cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), timestamp=i / 15, index=i))
    return frames


def _model_output(classifier, frame: Frame, box, view) -> np.ndarray:
    crop = crop_face(frame.gray, box.as_xywh(), margin=classifier.contract.face_margin)[None]
    return classifier.classify(crop, view)[0]


def test_a_face_is_classified_every_nth_frame_a_new_one_at_once_and_its_smoother_fed_its_last_output(classifier):
    frames = _frames(10, second_from=4)
    pipeline = FacePipeline(make_detector(DetectorConfig()), classifier,
                            PipelineConfig(detect_every=1, classify_every=3, mirrors="alternate"))
    readings = [pipeline.process(f) for f in frames]
    classified = {1: [], 2: []}
    reference = {1: EmotionSmoother(len(classifier.labels)), 2: EmotionSmoother(len(classifier.labels))}
    last = {}
    for frame, reading in zip(frames, readings):
        for face in reading.faces:
            if face.classified:
                classified[face.track_id].append(frame.index)
                # The view alternates per block of N frames, so a face read every 3rd frame sees both in turn.
                view = "original" if (frame.index // 3) % 2 == 0 else "mirror"
                last[face.track_id] = _model_output(classifier, frame, face.box, view)
            # Between classifications the reading is the last output, and the smoother still counts the frame.
            np.testing.assert_array_equal(face.probabilities, last[face.track_id])
            expected = reference[face.track_id].update(last[face.track_id])
            np.testing.assert_array_equal(face.state.probabilities, expected.probabilities)
            assert face.state.dominant == expected.dominant
    assert [len(r.faces) for r in readings] == [1] * 4 + [2] * 6
    assert classified == {1: [0, 3, 6, 9], 2: [4, 6, 9]}  # the face that came on frame 4 is read at once
    assert readings[4].faces[1].is_new


def test_classify_every_1_reads_every_face_on_every_frame_as_before(classifier):
    frames = _frames(6, second_from=2)
    off = FacePipeline(make_detector(DetectorConfig()), classifier, PipelineConfig(detect_every=2, classify_every=1))
    smoothers = {}
    for frame in frames:
        reading = off.process(frame)
        assert len(reading.faces) == (1 if frame.index < 2 else 2)
        for face in reading.faces:
            assert face.classified
            # Each frame's own model output, one view a frame in turn, as FacePipeline read faces before the option.
            view = "original" if frame.index % 2 == 0 else "mirror"
            np.testing.assert_array_equal(face.probabilities, _model_output(classifier, frame, face.box, view))
            smoother = smoothers.setdefault(face.track_id, EmotionSmoother(len(classifier.labels)))
            np.testing.assert_array_equal(face.state.probabilities, smoother.update(face.probabilities).probabilities)


def test_classify_every_must_be_a_positive_count():
    with pytest.raises(ValueError, match="field 'classify_every' must be >= 1, got 0"):
        PipelineConfig(classify_every=0)
