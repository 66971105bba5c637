"""`emotion-edge ensemble` (several networks averaged in one model) and `train --init-from` (a warm-started cycle)."""

import json

import numpy as np
import pytest
from helpers import synthetic

from emotion_edge.main import main
from emotion_edge.training.train import TrainConfig, train

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two one-epoch runs of edge-vgg that differ only in their seed, and a five-class run."""
    root = tmp_path_factory.mktemp("ensemble")
    data = synthetic.write_csv(root / "fer.csv")
    common = dict(data=str(data), epochs=1, batch_size=32, warmup_epochs=0)
    for name, seed in (("a", 1), ("b", 2)):
        train(TrainConfig(run_dir=str(root / name), seed=seed, **common))
    train(TrainConfig(run_dir=str(root / "five"), classes=["angry", "happy", "sad", "surprise", "neutral"], **common))
    return root


def _val_faces(root, count=12):
    from emotion_edge.device.contract import EMOTIONS, normalize
    from emotion_edge.training.fer2013 import load_fer2013
    from emotion_edge.training.splits import make_splits

    return normalize(make_splits(load_fer2013(root / "fer.csv"), EMOTIONS)["val"].images[:count])


def test_ensemble_is_the_mean_of_its_members_and_reports_publictest(runs, capsys):
    import keras

    out = runs / "ens"
    assert main(["ensemble", str(runs / "a"), str(runs / "b" / "model.keras"), "--out", str(out),
                 "--data", str(runs / "fer.csv")]) == 0
    faces = _val_faces(runs)
    members = [keras.models.load_model(runs / name / "model.keras", compile=False) for name in ("a", "b")]
    expected = np.mean([m.predict(faces, verbose=0) for m in members], axis=0)
    ensemble = keras.models.load_model(out / "model.keras", compile=False)
    np.testing.assert_allclose(ensemble.predict(faces, verbose=0), expected, atol=1e-6)
    assert not np.allclose(expected, members[0].predict(faces, verbose=0), atol=1e-4)  # the seeds made two nets

    metrics = json.loads((out / "metrics.json").read_text())
    single = json.loads((runs / "a" / "metrics.json").read_text())
    assert metrics["macs"] == 2 * single["macs"] and metrics["parameters"] == 2 * single["parameters"]
    assert metrics["val"]["samples"] == 7 * synthetic.USAGES["PublicTest"]
    assert [m["val_accuracy"] for m in metrics["members"]] == pytest.approx(
        [json.loads((runs / n / "metrics.json").read_text())["val"]["accuracy"] for n in ("a", "b")])
    assert (out / "confusion_matrix.png").exists() and json.loads((out / "config.json").read_text())["arch"] == "ensemble"
    printed = capsys.readouterr().out
    assert "ensemble: PublicTest accuracy" in printed and printed.count("PublicTest accuracy") == 3

    # `evaluate` takes the folder like a run's, with the ensemble's labels from its config.
    assert main(["evaluate", str(out), "--data", str(runs / "fer.csv"), "--split", "PublicTest", "--tta"]) == 0
    evaluated = json.loads((out / "eval-model-val" / "metrics.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(metrics["val"]["accuracy"])


def test_ensemble_quantizes_into_one_int8_model_the_device_loads(runs, tmp_path):
    from emotion_edge.device.model.classifier import EmotionClassifier

    out = runs / "ens-q"
    assert main(["ensemble", str(runs / "a"), str(runs / "b"), "--out", str(out)]) == 0
    tflite = tmp_path / "ensemble.tflite"
    # One-epoch members are near-uniform, so the parity gate's thresholds are not what this test judges.
    assert main(["quantize", str(out), "--out", str(tflite), "--data", str(runs / "fer.csv"), "--representative", "28",
                 "--min-agreement", "0", "--max-drop", "100"]) == 0
    classifier = EmotionClassifier(tflite)
    meta = json.loads(tflite.with_suffix(".json").read_text())
    assert meta["source"]["arch"] == "ensemble" and len(meta["source"]["config"]["members"]) == 2
    probs = classifier.classify(np.round(_val_faces(runs, 3)[..., 0] * 255).astype(np.uint8))
    assert probs.shape == (3, 7) and np.allclose(probs.sum(axis=1), 1.0, atol=0.05)


def test_members_with_other_labels_are_refused(runs, capsys):
    assert main(["ensemble", str(runs / "a"), str(runs / "five"), "--out", str(runs / "bad")]) == 2
    err = capsys.readouterr().err
    assert "disagree on 'classes'" in err and "five" in err
    assert main(["ensemble", str(runs / "a"), "--out", str(runs / "bad")]) == 2
    assert "at least two members" in capsys.readouterr().err
    assert main(["ensemble", str(runs / "a"), str(runs / "fer.csv"), "--out", str(runs / "bad")]) == 2
    assert "fer.csv: not a trained Keras model" in capsys.readouterr().err


def test_init_from_starts_from_the_trained_weights(runs, tmp_path):
    import keras

    source = keras.models.load_model(runs / "a" / "model.keras", compile=False)
    # A learning rate this small and no weight decay leave the kernels where the source left them.
    train(TrainConfig(data=str(runs / "fer.csv"), run_dir=str(tmp_path / "warm"), epochs=1, batch_size=32,
                      warmup_epochs=0, seed=7, learning_rate=1e-12, weight_decay=0.0, init_from=str(runs / "a")))
    warm = keras.models.load_model(tmp_path / "warm" / "checkpoint.keras", compile=False)
    # Same architecture, so the weights pair up in order (their names carry per-process layer counters).
    pairs = [(a.numpy(), b.numpy()) for a, b in zip(source.weights, warm.weights) if a.path.endswith("kernel")]
    assert len(pairs) > 4 and all(np.allclose(a, b, atol=1e-6) for a, b in pairs)
    fresh = keras.models.load_model(runs / "b" / "model.keras", compile=False)  # another seed's start differs
    assert not np.allclose(pairs[0][0], [w for w in fresh.weights if w.path.endswith("kernel")][0].numpy(), atol=1e-3)
    assert json.loads((tmp_path / "warm" / "config.json").read_text())["init_from"] == str(runs / "a")


def test_init_from_another_architecture_is_refused(runs, tmp_path, capsys):
    code = main(["train", "--data", str(runs / "fer.csv"), "--run-dir", str(tmp_path / "m"), "--arch", "edge-vgg-m",
                 "--epochs", "1", "--init-from", str(runs / "a")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--init-from" in err and "do not fit --arch edge-vgg-m" in err


def test_forward_selection_prefers_the_member_that_fixes_the_others_mistakes():
    from emotion_edge.training.ensemble import forward_selection

    labels = np.array([0, 0, 1, 1])
    best = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.2, 0.8]])  # 3 of 4 right
    same = best.copy()  # as accurate, and wrong where `best` is wrong
    fixer = np.array([[0.6, 0.4], [0.4, 0.6], [0.0, 1.0], [0.4, 0.6]])  # 3 of 4 right, and sure where best errs
    steps = forward_selection([same, fixer, best], labels, 2)
    assert [i for i, _ in steps] == [0, 1]  # the first of the equally accurate, then the complement, not the copy
    assert [a for _, a in steps] == [0.75, 1.0]


def test_select_keeps_the_greedy_choice_and_reports_its_steps(runs, capsys):
    from emotion_edge.training.evaluate import load_any_model, predict_with_tta
    from emotion_edge.training.fer2013 import load_fer2013
    from emotion_edge.training.splits import make_splits

    pool = [runs / "a" / "model.keras", runs / "b" / "model.keras", runs / "a" / "checkpoint.keras"]
    out = runs / "ens-select"
    assert main(["ensemble", *map(str, pool), "--out", str(out), "--data", str(runs / "fer.csv"), "--select", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    val = make_splits(load_fer2013(runs / "fer.csv"), tuple(metrics["labels"]))["val"]
    probs = {str(p): predict_with_tta(load_any_model(p), val.images, True) for p in pool}
    chosen = [step["model"] for step in metrics["selection"]]
    assert len(chosen) == 2 and [m["model"] for m in metrics["members"]] == chosen
    alone = {m: float(np.mean(probs[m].argmax(1) == val.labels)) for m in probs}
    assert alone[chosen[0]] == max(alone.values())
    pair = float(np.mean((probs[chosen[0]] + probs[chosen[1]]).argmax(1) == val.labels))
    assert metrics["selection"][1]["ensemble_val_accuracy_after"] == pytest.approx(pair)
    assert metrics["val"]["accuracy"] == pytest.approx(pair)
    assert capsys.readouterr().out.count("selected ") == 2

    assert main(["ensemble", *map(str, pool), "--out", str(out), "--select", "2"]) == 2
    assert "give --data" in capsys.readouterr().err
    assert main(["ensemble", *map(str, pool), "--out", str(out), "--data", str(runs / "fer.csv"), "--select", "4"]) == 2
    assert "between 2 and the 3 candidates" in capsys.readouterr().err


def test_snapshots_are_kept_from_resume_on_and_ensemble_with_their_run_labels(tmp_path, runs, capsys):
    import keras

    five = ["angry", "happy", "sad", "surprise", "neutral"]
    config = dict(data=str(runs / "fer.csv"), run_dir=str(tmp_path / "run"), batch_size=32, warmup_epochs=0,
                  classes=five)
    train(TrainConfig(epochs=1, **config))
    assert not (tmp_path / "run" / "snapshots").exists()
    train(TrainConfig(epochs=3, snapshot_every=1, **config), resume=True)  # added on resume: epochs 2 and 3 kept
    snapshots = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snapshots == ["epoch-002.keras", "epoch-003.keras"]
    last = keras.models.load_model(tmp_path / "run" / "snapshots" / "epoch-003.keras", compile=False)
    checkpoint = keras.models.load_model(tmp_path / "run" / "checkpoint.keras", compile=False)
    assert all(np.array_equal(a, b) for a, b in zip(last.get_weights(), checkpoint.get_weights()))

    # A snapshot's labels are its run's (five classes here), read from the run folder above snapshots/.
    members = [str(tmp_path / "run" / "snapshots" / name) for name in snapshots]
    assert main(["ensemble", *members, "--out", str(tmp_path / "ens"), "--data", str(runs / "fer.csv")]) == 0
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert metrics["labels"] == five and metrics["val"]["samples"] == 5 * synthetic.USAGES["PublicTest"]
