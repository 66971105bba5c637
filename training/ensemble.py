"""Several trained networks as one model: one input, the members' probabilities averaged, one output.

Why one graph rather than several model files: the device, `quantize`, `evaluate` and `teacher-outputs` all
take one model with one input and one output, so an ensemble needs no new code on the Pi and is quantized,
gated and measured like any other model. Its cost per face is the sum of its members' (MACs are counted
through the nested members), which `bench/latency.py` shows against the shipped model. On FER2013 two
networks of the same kind trained apart, or one network at two points of its schedule, disagree on enough
faces that their average is right more often than either (training/EXPERIMENTS.md).

An ensemble folder holds:
  model.keras    the averaged model (float32), loadable anywhere a run's model.keras is
  config.json    arch "ensemble", the members and their labels and protocol (what `quantize` reads)
  metrics.json and the validation reports, when built with --data: PublicTest only, like a training run
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_edge.device.contract import labels_for
from emotion_edge.device.errors import UsageError
from emotion_edge.training.reports import metrics_dict, write_json, write_split_reports

ENSEMBLE_ARCH = "ensemble"


def member_file(path: str | Path) -> Path:
    """A run folder's model.keras, or a .keras file as given."""
    path = Path(path)
    model_file = path / "model.keras" if path.is_dir() else path
    if model_file.suffix != ".keras" or not model_file.is_file():
        raise UsageError(f"{path}: not a trained Keras model; give a run folder from `emotion-edge train` "
                         f"(with its model.keras) or a .keras file")
    return model_file


def member_config(model_file: Path) -> dict:
    """The run's config.json beside the model file ({} for a bare .keras file: seven labels, official split)."""
    config = model_file.parent / "config.json"
    return json.loads(config.read_text()) if config.is_file() else {}


def _common(configs: Sequence[dict], files: Sequence[Path], key: str, default) -> object:
    values = [config.get(key) or default for config in configs]
    if any(value != values[0] for value in values):
        listed = ", ".join(f"{f} ({value})" for f, value in zip(files, values))
        raise UsageError(f"ensemble members disagree on {key!r}: {listed}; members must share labels and split")
    return values[0]


def average_models(models: Sequence):
    """One Keras model: a face in, the mean of `models`' probabilities out."""
    import keras

    face = keras.Input(shape=tuple(models[0].inputs[0].shape[1:]), name="face")
    # Each member is wrapped under its own name: two runs of one architecture share layer names otherwise.
    wrapped = [keras.Model(m.inputs[0], m.outputs[0], name=f"member_{i}") for i, m in enumerate(models)]
    mean = keras.layers.Average(name="mean_probabilities")([member(face) for member in wrapped])
    return keras.Model(face, mean, name=ENSEMBLE_ARCH)


def build_ensemble(members: Sequence[str | Path]):
    """The averaged Keras model and the config.json describing it."""
    import keras

    if len(members) < 2:
        raise UsageError(f"an ensemble needs at least two members, got {len(members)}")
    files = [member_file(m) for m in members]
    configs = [member_config(f) for f in files]
    classes = _common(configs, files, "classes", [])
    protocol = _common(configs, files, "protocol", "official")
    # The seed draws the stratified protocol's split (and weights, which members may differ in): shared only there.
    seed = _common(configs, files, "seed", 1234) if protocol == "stratified" else 1234
    labels = labels_for(classes)
    loaded = [keras.models.load_model(f, compile=False) for f in files]
    for model_file, model in zip(files, loaded):
        if tuple(model.outputs[0].shape[1:]) != (len(labels),):
            raise UsageError(f"{model_file}: outputs {tuple(model.outputs[0].shape[1:])} classes, its config says "
                             f"{len(labels)}; rebuild the member or give its run folder")
    model = average_models(loaded)
    config = {"arch": ENSEMBLE_ARCH, "classes": list(classes), "protocol": protocol, "seed": seed,
              "members": [{"model": str(f), "arch": c.get("arch"), "run": str(f.parent)} for f, c in zip(files, configs)]}
    return model, config


def write_ensemble(members: Sequence[str | Path], out_dir: Path, data: str | None = None, tta: bool = True) -> dict:
    """Build, save and (given the data) report the ensemble and each member on PublicTest."""
    from emotion_edge.device.atomic import replacing

    model, config = build_ensemble(members)
    out_dir.mkdir(parents=True, exist_ok=True)
    with replacing(out_dir / "model.keras", tmp=out_dir / "model.tmp.keras") as tmp:
        model.save(tmp)
    write_json(out_dir / "config.json", config)
    payload = {"arch": ENSEMBLE_ARCH, "members": config["members"]}
    if data:
        payload.update(_validation_reports(out_dir, config, data, tta))
        write_json(out_dir / "metrics.json", payload)
    return payload


def _validation_reports(out_dir: Path, config: dict, data: str, tta: bool) -> dict:
    """PublicTest reports of the ensemble, and each member's accuracy beside it (selection never sees PrivateTest)."""
    from emotion_edge.training.evaluate import load_any_model, predict_with_tta
    from emotion_edge.training.fer2013 import load_fer2013
    from emotion_edge.training.splits import make_splits

    labels = labels_for(config["classes"])
    val = make_splits(load_fer2013(data), labels, config["protocol"], config["seed"])["val"]
    per_member = []
    for member in config["members"]:
        probs = predict_with_tta(load_any_model(member["model"]), val.images, tta)
        per_member.append(probs)
        member["val_accuracy"] = float(np.mean(probs.argmax(1) == val.labels))
    ensemble = load_any_model(out_dir / "model.keras")
    probs = np.mean(per_member, axis=0)  # the averaged model's own output, without running every member twice
    metrics = write_split_reports(out_dir, "val", val.labels, probs, labels)
    return {"labels": list(labels), "parameters": ensemble.parameters, "macs": ensemble.macs, "tta": tta,
            "val": metrics_dict(metrics)}
