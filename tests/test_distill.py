"""Distillation: teacher-outputs files, the KD loss, distilled training with resume; the GPU pack and the
numpy augmentation (synthetic data only)."""

import json

import numpy as np
import pytest
from helpers import synthetic

from emotion_edge.device.contract import EMOTIONS
from emotion_edge.main import main
from emotion_edge.training.distill import (
    DataIdentity,
    TeacherError,
    average_teachers,
    data_identity,
    distillation_loss_fn,
    from_probabilities,
    load_ferplus_votes,
    load_teacher_outputs,
    save_teacher_outputs,
)
from emotion_edge.training.train import TrainConfig, train


def _softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_outputs_round_trip_and_refuse_another_csv(tmp_path, fer_csv):
    identity = data_identity(fer_csv)
    probs = _softmax(np.random.default_rng(0).normal(size=(5, 7)))
    rows = np.array([9, 2, 4, 0, 7])
    path = save_teacher_outputs(tmp_path / "t.npz", from_probabilities(rows, probs, EMOTIONS, identity, "test"))
    loaded = load_teacher_outputs(path, identity)
    assert loaded.labels == EMOTIONS and loaded.log_probs.dtype == np.float16
    np.testing.assert_allclose(loaded.for_rows(np.array([4, 9])), probs[[2, 0]], atol=2e-3)
    with np.load(path) as npz:
        assert set(npz.files) == {"rows", "log_probs", "meta"}, "no images, no labels"
    other = synthetic.write_csv(tmp_path / "other.csv", synthetic.records(seed=5))
    with pytest.raises(TeacherError, match="computed from another FER2013 file"):
        load_teacher_outputs(path, data_identity(other))
    with pytest.raises(TeacherError, match="lack 1 train rows, first row 3"):
        loaded.for_rows(np.array([2, 3]), "train")
    ensemble = average_teachers([loaded, load_teacher_outputs(path)])
    np.testing.assert_allclose(ensemble.probabilities(), loaded.probabilities(), atol=2e-3)
    moved = from_probabilities(rows, probs, EMOTIONS, DataIdentity("0" * 64, 1), "elsewhere")
    with pytest.raises(TeacherError, match="disagree"):
        average_teachers([loaded, moved])


def test_kd_loss_equals_the_hand_computed_value():
    student = np.array([[0.7, 0.2, 0.1]], dtype=np.float32)
    teacher = np.array([[0.5, 0.3, 0.2]], dtype=np.float32)
    one_hot = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    alpha, t, smoothing = 0.5, 4.0, 0.1
    p_t, p_s = _softmax(np.log(teacher) / t), _softmax(np.log(student) / t)
    kd = t * t * np.sum(p_t * (np.log(p_t) - np.log(p_s)))
    ce = -np.sum((one_hot * (1 - smoothing) + smoothing / 3) * np.log(student))
    expected = alpha * kd + (1 - alpha) * ce
    got = np.asarray(distillation_loss_fn(np.concatenate([one_hot, teacher], axis=1), student, alpha, t, smoothing))
    assert got.shape == (1,) and got[0] == pytest.approx(expected, rel=1e-5)
    votes, mask = np.array([[0.0, 0.0, 1.0]], np.float32), np.array([[1.0]], np.float32)
    wide = np.concatenate([one_hot, teacher, votes, mask], axis=1)
    with_aux = np.asarray(distillation_loss_fn(wide, student, alpha, t, smoothing, ferplus_weight=0.3))
    assert with_aux[0] == pytest.approx(expected + 0.3 * -np.log(0.1), rel=1e-5)


def test_ferplus_votes_map_to_fer2013_order(tmp_path):
    votes = tmp_path / "votes.csv"
    votes.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
                     "Training,a.png,4,0,0,1,3,2,0,0,0,0\nTraining,,0,0,0,0,0,0,0,0,0,10\n")
    shares, mask = load_ferplus_votes(votes, EMOTIONS, 2)
    np.testing.assert_allclose(shares[0], np.array([3, 2, 0, 0, 1, 0, 4]) / 10)
    assert mask.tolist() == [1.0, 0.0]
    with pytest.raises(TeacherError, match="2 rows, but the FER2013 CSV has 3"):
        load_ferplus_votes(votes, EMOTIONS, 3)


def test_distilled_run_trains_resumes_and_reports(tmp_path, fer_csv, capsys):
    teacher_run = tmp_path / "teacher"
    train(TrainConfig(data=str(fer_csv), run_dir=str(teacher_run), epochs=1, batch_size=32, warmup_epochs=0))
    out = tmp_path / "teacher.npz"
    assert main(["teacher-outputs", str(teacher_run), "--data", str(fer_csv), "--out", str(out), "--views", "1"]) == 0
    outputs = load_teacher_outputs(out, data_identity(fer_csv))
    per_class = synthetic.USAGES
    assert len(outputs.rows) == 7 * (per_class["Training"] + per_class["PublicTest"])  # never PrivateTest
    assert outputs.rows.max() < 7 * (per_class["Training"] + per_class["PublicTest"])

    run = tmp_path / "student"
    argv = ["train", "--data", str(fer_csv), "--run-dir", str(run), "--epochs", "1", "--batch-size", "32",
            "--warmup-epochs", "0", "--teacher", str(out), "--teacher", str(out), "--distill-alpha", "0.7"]
    assert main(argv) == 0
    assert main([*argv[:6], "2", *argv[7:], "--resume"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["teachers"] == [str(out), str(out)] and config["distill_alpha"] == 0.7
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2 and 0.0 <= metrics["val"]["accuracy"] <= 1.0
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:2] == ["epoch", "accuracy"] and len(history) == 3
    assert {"model.keras", "curves.png", "confusion_matrix.png"} <= {p.name for p in run.iterdir()}

    other = synthetic.write_csv(tmp_path / "other.csv", synthetic.records(seed=7))
    assert main(["train", "--data", str(other), "--run-dir", str(tmp_path / "r2"), "--teacher", str(out)]) == 2
    assert "computed from another FER2013 file" in capsys.readouterr().err


def test_gpu_pack_round_trips_without_privatetest(tmp_path, fer_csv):
    from emotion_edge.training.gpu.pack import build_pack, decode_faces, encode_faces, load_pack, save_pack

    faces = np.random.default_rng(1).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    faces[1] = 0
    for codec in ("zlib", "xz"):
        np.testing.assert_array_equal(decode_faces(encode_faces(faces, codec), faces.shape, codec), faces)
    pack = build_pack(fer_csv)
    path = save_pack(pack, tmp_path / "pack")  # xz
    loaded = load_pack(tmp_path / "pack")
    np.testing.assert_array_equal(loaded.faces, pack.faces)
    assert set(loaded.splits.tolist()) == {0, 1} and len(loaded.rows) == 7 * 30
    assert loaded.data_sha256 == data_identity(fer_csv).sha256
    rows = synthetic.records()
    np.testing.assert_array_equal(loaded.faces[-1], rows[len(loaded.rows) - 1][1])
    assert path.stat().st_size < pack.faces.nbytes * 1.2


def test_numpy_augmentation_keeps_shape_range_and_varies_faces():
    from emotion_edge.training.gpu.augment import augment_faces

    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48, 1)).astype(np.uint8)
    unit = faces.astype(np.float32) / 255
    out = augment_faces(faces, np.random.default_rng(3))
    assert out.shape == faces.shape and out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    assert (np.abs(out - unit).reshape(64, -1).mean(axis=1) > 0.01).all(), "every face is transformed"
    np.testing.assert_array_equal(out, augment_faces(faces, np.random.default_rng(3)))
    plain = augment_faces(faces, np.random.default_rng(4), strength=0.0)
    flipped = np.abs(plain - unit[:, :, ::-1]).max(axis=(1, 2, 3)) < 1e-6
    kept = np.abs(plain - unit).max(axis=(1, 2, 3)) < 1e-6
    assert (flipped | kept).all() and flipped.any() and kept.any(), "strength 0 leaves only the random flip"
