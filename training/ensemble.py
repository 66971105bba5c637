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

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_edge.device.contract import labels_for
from emotion_edge.device.errors import UsageError
from emotion_edge.training.reports import metrics_dict, write_json, write_split_reports
from emotion_edge.training.runfolder import model_file, run_config

ENSEMBLE_ARCH = "ensemble"


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


@dataclass(frozen=True)
class Candidates:
    """Would-be members: their files, run configs, and the labels, protocol and seed they share."""

    files: list[Path]
    configs: list[dict]
    classes: list[str]
    protocol: str
    seed: int

    @property
    def labels(self) -> tuple[str, ...]:
        return labels_for(self.classes)

    def subset(self, chosen: Sequence[int]) -> Candidates:
        return Candidates([self.files[i] for i in chosen], [self.configs[i] for i in chosen], self.classes,
                          self.protocol, self.seed)


def candidates(members: Sequence[str | Path]) -> Candidates:
    if len(members) < 2:
        raise UsageError(f"an ensemble needs at least two members, got {len(members)}")
    files = [model_file(m, "member") for m in members]
    configs = [run_config(f) for f in files]
    protocol = _common(configs, files, "protocol", "official")
    # The seed draws the stratified protocol's split (and weights, which members may differ in): shared only there.
    seed = _common(configs, files, "seed", 1234) if protocol == "stratified" else 1234
    return Candidates(files, configs, list(_common(configs, files, "classes", [])), protocol, seed)


def build_ensemble(chosen: Candidates):
    """The averaged Keras model and the config.json describing it."""
    import keras

    loaded = [keras.models.load_model(f, compile=False) for f in chosen.files]
    for found, model in zip(chosen.files, loaded):
        if tuple(model.outputs[0].shape[1:]) != (len(chosen.labels),):
            raise UsageError(f"{found}: outputs {tuple(model.outputs[0].shape[1:])} classes, its config says "
                             f"{len(chosen.labels)}; rebuild the member or give its run folder")
    config = {"arch": ENSEMBLE_ARCH, "classes": chosen.classes, "protocol": chosen.protocol, "seed": chosen.seed,
              "members": [{"model": str(f), "arch": c.get("arch"), "run": str(f.parent)}
                          for f, c in zip(chosen.files, chosen.configs)]}
    return average_models(loaded), config


def forward_selection(probs: Sequence[np.ndarray], labels: np.ndarray, size: int) -> list[tuple[int, float]]:
    """Greedy ensemble selection (Caruana et al., 2004): start from the most accurate candidate, then add the one
    whose average with those chosen is most accurate, until `size`; returns (index, accuracy after) per step."""
    chosen: list[tuple[int, float]] = []
    total = np.zeros_like(probs[0])
    for _ in range(min(size, len(probs))):
        scores = [(float(np.mean((total + p).argmax(1) == labels)), -i) for i, p in enumerate(probs)
                  if i not in {c for c, _ in chosen}]
        accuracy, negative = max(scores)
        chosen.append((-negative, accuracy))
        total = total + probs[-negative]
    return chosen


def write_ensemble(members: Sequence[str | Path], out_dir: Path, data: str | None = None, tta: bool = True,
                   select: int = 0) -> dict:
    """Build, save and (given the data) report the ensemble and each member on PublicTest; with `select`, the
    members are that many of the candidates, chosen by forward selection on PublicTest."""
    from emotion_edge.device.atomic import replacing

    pool = candidates(members)
    if select and not data:
        raise UsageError("--select chooses members by their PublicTest accuracy: give --data")
    if select and not 2 <= select <= len(pool.files):
        raise UsageError(f"--select {select}: choose between 2 and the {len(pool.files)} candidates given")
    payload: dict = {"arch": ENSEMBLE_ARCH}
    if data:
        val = _validation_split(pool, data)
        probs = [_member_probs(f, val, tta) for f in pool.files]
        alone = [float(np.mean(p.argmax(1) == val.labels)) for p in probs]
        if select:
            steps = forward_selection(probs, val.labels, select)
            payload["selection"] = [{"model": str(pool.files[i]), "val_accuracy": alone[i],
                                     "ensemble_val_accuracy_after": after} for i, after in steps]
            keep = [i for i, _ in steps]
            pool, probs, alone = pool.subset(keep), [probs[i] for i in keep], [alone[i] for i in keep]
    model, config = build_ensemble(pool)
    out_dir.mkdir(parents=True, exist_ok=True)
    with replacing(out_dir / "model.keras", tmp=out_dir / "model.tmp.keras") as tmp:
        model.save(tmp)
    write_json(out_dir / "config.json", config)
    payload["members"] = config["members"]
    if data:
        for member, accuracy in zip(payload["members"], alone):
            member["val_accuracy"] = accuracy
        # The averaged model's output is the members' mean (Average layer), so it is not run a second time.
        metrics = write_split_reports(out_dir, "val", val.labels, np.mean(probs, axis=0), pool.labels)
        from emotion_edge.training.models import count_macs

        payload.update(labels=list(pool.labels), parameters=int(model.count_params()), macs=count_macs(model), tta=tta,
                       val=metrics_dict(metrics))
        write_json(out_dir / "metrics.json", payload)
    return payload


def _validation_split(pool: Candidates, data: str):
    from emotion_edge.training.fer2013 import load_fer2013
    from emotion_edge.training.splits import make_splits

    return make_splits(load_fer2013(data), pool.labels, pool.protocol, pool.seed)["val"]


def _member_probs(model_file: Path, val, tta: bool) -> np.ndarray:
    """One candidate's PublicTest probabilities (selection and reports never see PrivateTest)."""
    from emotion_edge.training.evaluate import load_any_model, predict_with_tta

    return predict_with_tta(load_any_model(model_file), val.images, tta)
