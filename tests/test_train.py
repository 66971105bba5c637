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
