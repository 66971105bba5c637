import numpy as np
import pytest

from emotion_edge.device.contract import (
    EMOTIONS,
    ContractError,
    ModelContract,
    crop_face,
    labels_for,
    normalize,
    square_box,
)


def test_labels_subset_keeps_fer_order_and_rejects_unknown():
    assert labels_for(["Surprise", "angry", "happy"]) == ("angry", "happy", "surprise")
    assert labels_for([]) == EMOTIONS
    with pytest.raises(ContractError, match="unknown emotion.*'joy'"):
        labels_for(["joy"])


def test_contract_rejects_foreign_preprocessing_naming_the_field():
    with pytest.raises(ContractError, match="field 'preprocessing'"):
        ModelContract(preprocessing="rgb224-imagenet")


def test_square_box_widens_around_the_centre():
    assert square_box((50, 40, 20, 10), margin=0.25) == (45, 30, 30)


def test_face_at_the_border_is_padded_not_squashed():
    frame = np.zeros((100, 200), np.uint8)
    frame[:, :10] = 200  # a bright strip at the left edge
    crop = crop_face(frame, (0, 40, 20, 20), size=30, margin=0.25)
    assert crop.shape == (30, 30)
    # 5 columns of the 30-pixel square lie left of the frame: replicated from the bright edge, not stretched.
    assert (crop[:, :15] == 200).all() and (crop[:, 15:] == 0).all()
    with pytest.raises(ValueError, match="outside"):
        crop_face(frame, (500, 500, 10, 10))


def test_crop_face_gives_model_sized_gray_crop_from_color_frame():
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[40:80, 60:100] = (255, 255, 255)
    crop = crop_face(frame, (60, 40, 40, 40), margin=0.0)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert crop.min() == 255  # exactly the white face, nothing around it


def test_normalize_scales_to_unit_range_with_channel_axis():
    x = normalize(np.array([[[0, 255]]], np.uint8))
    assert x.shape == (1, 1, 2, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    with pytest.raises(ValueError, match="expected face crops"):
        normalize(np.zeros((2, 48, 48, 3), np.uint8))


def test_contract_without_flip_field_is_single_pass_and_a_wrong_type_is_named(tmp_path):
    from pathlib import Path

    from emotion_edge.device.model.metadata import parse_metadata

    raw = {"format": "emotion-edge-model/1", "labels": list(EMOTIONS), "input_size": 48, "channels": 1,
           "preprocessing": "gray48-unit-v1", "face_margin": 0.15, "sha256": "0" * 64,
           "input": {"dtype": "int8", "scale": 1 / 255, "zero_point": -128},
           "output": {"dtype": "int8", "scale": 1 / 256, "zero_point": -128}}
    assert parse_metadata(raw, Path("m.json")).contract.flip_average is False
    assert parse_metadata({**raw, "flip_average": True}, Path("m.json")).contract.flip_average is True
    with pytest.raises(ContractError, match="field 'flip_average' should be bool"):
        parse_metadata({**raw, "flip_average": "yes"}, Path("m.json"))
