import csv
import json

import pytest
from helpers import synthetic

from emotion_edge.main import main
from emotion_edge.training.train import TrainConfig, class_weights, train

pytestmark = pytest.mark.tensorflow

REPORT_FILES = {
    "config.json", "history.csv", "model.keras", "checkpoint.keras", "state.json", "curves.png",
    "confusion_matrix.png", "classification_report.txt", "classification_report.json", "metrics.json",
}


def _config(tmp_path, data, **kw) -> TrainConfig:
    defaults = dict(data=str(data), run_dir=str(tmp_path / "run"), epochs=1, batch_size=32, warmup_epochs=0)
    return TrainConfig(**{**defaults, **kw})


def test_one_epoch_writes_every_report(tmp_path, fer_csv):
    metrics = train(_config(tmp_path, fer_csv))
    run = tmp_path / "run"
    assert REPORT_FILES <= {p.name for p in run.iterdir()}
    assert metrics["epochs_done"] == 1 and metrics["val"]["samples"] == 7 * synthetic.USAGES["PublicTest"]
    assert set(metrics["val"]["per_class_f1"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    report = json.loads((run / "classification_report.json").read_text())
    assert "macro avg" in report and "disgust" in report
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_from_the_checkpoint(tmp_path, fer_csv):
    train(_config(tmp_path, fer_csv, epochs=1))
    first_model = (tmp_path / "run" / "checkpoint.keras").read_bytes()
    metrics = train(_config(tmp_path, fer_csv, epochs=3), resume=True)
    with open(tmp_path / "run" / "history.csv", newline="") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [0, 1, 2]  # epoch 0 from the first run, then 1 and 2 appended, none repeated
    assert metrics["epochs_done"] == 3
    assert (tmp_path / "run" / "checkpoint.keras").read_bytes() != first_model


def test_class_subset_trains_a_five_class_model(tmp_path, fer_csv):
    metrics = train(_config(tmp_path, fer_csv, classes=["angry", "happy", "sad", "surprise", "neutral"]))
    assert metrics["labels"] == ["angry", "happy", "sad", "surprise", "neutral"]
    assert len(metrics["val"]["confusion"]) == 5


def test_class_weights_lift_rare_classes_and_average_one():
    import numpy as np

    labels = np.array([0] * 90 + [1] * 10)
    for mode in ("sqrt", "balanced"):
        w = class_weights(labels, 2, mode)
        assert w[1] > w[0]
        assert (90 * w[0] + 10 * w[1]) / 100 == pytest.approx(1.0)
    assert class_weights(labels, 2, "none") is None


def test_cli_train_and_evaluate_on_synthetic_data(tmp_path, fer_csv, capsys):
    run = tmp_path / "cli-run"
    assert main(["train", "--data", str(fer_csv), "--run-dir", str(run), "--epochs", "1", "--batch-size", "32"]) == 0
    assert main(["evaluate", str(run), "--data", str(fer_csv), "--split", "PrivateTest", "--tta"]) == 0
    out = capsys.readouterr().out
    assert "on test (42 faces, tta=True): accuracy" in out
    assert json.loads((run / "eval-model-test" / "metrics.json").read_text())["split"] == "test"


def test_cli_reports_bad_data_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n9,1 2 3,Training\n")
    assert main(["train", "--data", str(bad), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv line 2: 'emotion' is 9, outside 0-6" in err


def test_cli_architecture_names_match_the_models():
    from emotion_edge.training.cli import ARCHITECTURE_NAMES
    from emotion_edge.training.models import ARCHITECTURES

    assert set(ARCHITECTURE_NAMES) == set(ARCHITECTURES)


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    from emotion_edge.training.fastpath import cpu_has_native_bf16, resolve_precision

    zen3 = tmp_path / "zen3"
    zen3.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    zen4 = tmp_path / "zen4"
    zen4.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert not cpu_has_native_bf16(zen3) and cpu_has_native_bf16(zen4)
    assert not cpu_has_native_bf16(tmp_path / "missing")
    assert resolve_precision("fp32") == "fp32" and resolve_precision("auto") in ("bf16", "fp32")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        resolve_precision("fp8")


def test_batched_augmentation_keeps_shape_range_and_varies_faces():
    import numpy as np
    import tensorflow as tf

    from emotion_edge.training.fastpath import augment_batch

    faces = np.random.default_rng(0).uniform(0, 1, (64, 48, 48, 1)).astype(np.float32)
    out = augment_batch(tf.constant(faces), tf.constant([1, 2], tf.int64)).numpy()
    assert out.shape == faces.shape and out.min() >= 0.0 and out.max() <= 1.0
    changed = np.abs(out - faces).reshape(64, -1).mean(axis=1)
    assert (changed > 0.01).all(), "every face is transformed"
    again = augment_batch(tf.constant(faces), tf.constant([1, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(out, again)  # stateless: the same seed gives the same batch
    plain = augment_batch(tf.constant(faces), tf.constant([1, 2], tf.int64), strength=0.0).numpy()
    flipped = np.abs(plain - faces[:, :, ::-1]).max(axis=(1, 2, 3)) < 1e-5
    kept = np.abs(plain - faces).max(axis=(1, 2, 3)) < 1e-5
    assert (flipped | kept).all() and flipped.any() and kept.any(), "strength 0 leaves only the random flip"


def test_sgd_bf16_run_saves_a_float32_inference_model(tmp_path, fer_csv):
    import keras

    metrics = train(_config(tmp_path, fer_csv, optimizer="sgd", learning_rate=0.02, precision="bf16"))
    assert metrics["epochs_done"] == 1
    assert keras.mixed_precision.global_policy().name == "float32", "train() restores the caller's policy"
    saved = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    checkpoint = keras.models.load_model(tmp_path / "run" / "checkpoint.keras")
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in checkpoint.layers}
