"""`emotion-edge evaluate`: the run reports for any model (Keras or int8 TFLite) on any split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion_edge.device.contract import ModelContract
from emotion_edge.training.fer2013 import load_fer2013
from emotion_edge.training.reports import metrics_dict, write_json, write_split_reports
from emotion_edge.training.splits import canonical_split, make_splits


@dataclass(frozen=True)
class LoadedModel:
    """Something that maps uint8 faces to probabilities, and the contract it was trained under."""

    contract: ModelContract
    predict: object  # Callable[[np.ndarray], np.ndarray]
    kind: str
    parameters: int = 0
    macs: int = 0


def _keras_contract(path: Path) -> ModelContract:
    """A Keras model's contract comes from its run's config.json (labels may be a subset)."""
    from emotion_edge.device.contract import labels_for
    from emotion_edge.training.runfolder import run_config

    return ModelContract(labels=labels_for(run_config(path).get("classes")))


def load_any_model(path: str | Path, threads: int = 2) -> LoadedModel:
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if path.suffix == ".tflite":
        from emotion_edge.device.model.classifier import EmotionClassifier

        classifier = EmotionClassifier(path, threads=threads, require_int8=False)
        return LoadedModel(classifier.contract, classifier.classify_many, "tflite")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model (give a run folder, a .keras file or a .tflite file)")
    import keras

    model = keras.models.load_model(path, compile=False)

    def predict(faces: np.ndarray) -> np.ndarray:
        from emotion_edge.device.contract import normalize

        return np.asarray(model.predict(normalize(faces), batch_size=256, verbose=0))

    from emotion_edge.training.models import count_macs

    return LoadedModel(_keras_contract(path), predict, "keras", int(model.count_params()), count_macs(model))


def predict_with_tta(model: LoadedModel, faces: np.ndarray, tta: bool) -> np.ndarray:
    """Probabilities, averaged with the mirrored faces when `tta` (faces are left-right symmetric in meaning)."""
    from emotion_edge.device.contract import average_mirrors, with_mirrors

    if not tta:
        return np.asarray(model.predict(faces), dtype=np.float64)
    return average_mirrors(np.asarray(model.predict(np.ascontiguousarray(with_mirrors(faces))), dtype=np.float64))


def evaluate(model_path: str | Path, data: str, split: str, out_dir: Path, tta: bool,
             protocol: str = "official", seed: int = 1234, skip_bad: bool = False) -> dict:
    model = load_any_model(model_path)
    name = canonical_split(split)
    splits = make_splits(load_fer2013(data, skip_bad=skip_bad), model.contract.labels, protocol, seed)
    chosen = splits[name]
    # A model whose contract says flip_average already averages mirrors inside classify().
    probs = predict_with_tta(model, chosen.images, tta and not model.contract.flip_average)
    metrics = write_split_reports(out_dir, name, chosen.labels, probs, model.contract.labels)
    payload = {"model": str(model_path), "kind": model.kind, "split": name,
               "tta": tta or model.contract.flip_average, **metrics_dict(metrics)}
    write_json(out_dir / "metrics.json", payload)
    return payload
