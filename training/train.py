"""Train a network on FER2013 into a self-describing run folder that can be resumed.

Run folder:
  config.json            the TrainConfig used
  history.csv            per-epoch loss/accuracy (Keras CSVLogger), appended on resume
  model.keras            best inference model on the validation split (no augmentation layers)
  checkpoint.keras       last epoch's model with optimizer state (in the training precision), for --resume
  state.json             epochs done, best validation accuracy, early-stopping patience used
  snapshots/epoch-N.keras  with --snapshot-every: that epoch's inference model (ensemble members)
  curves.png, confusion_matrix.png, classification_report.{txt,json}, metrics.json
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emotion_edge.device.atomic import replacing
from emotion_edge.device.contract import ModelContract, labels_for, normalize
from emotion_edge.device.errors import UsageError
from emotion_edge.training.fer2013 import load_fer2013
from emotion_edge.training.reports import metrics_dict, plot_curves, write_json, write_split_reports
from emotion_edge.training.runfolder import snapshot_path
from emotion_edge.training.splits import Split, make_splits

log = logging.getLogger(__name__)

@dataclass
class TrainConfig:
    data: str
    run_dir: str
    arch: str = "edge-vgg"
    classes: list[str] = field(default_factory=list)  # empty: all seven
    protocol: str = "official"
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    class_weight: str = "sqrt"  # none | sqrt | balanced
    patience: int = 15
    seed: int = 1234
    augment: bool = True
    skip_bad: bool = False
    tta: bool = True
    limit: int = 0  # use only the first N training faces (smoke runs); 0 = all
    optimizer: str = "adamw"  # adamw | sgd (Nesterov momentum, decoupled weight decay)
    momentum: float = 0.9
    precision: str = "auto"  # auto (bf16 where the CPU has it natively) | bf16 | fp32
    teachers: list[str] = field(default_factory=list)  # teacher-outputs .npz files, averaged (distillation)
    distill_alpha: float = 0.5  # weight of the teacher's soft targets; 1 - alpha on the (smoothed) labels
    distill_temperature: float = 4.0
    ferplus_votes: str = ""  # FER+ votes CSV: an auxiliary soft target (empty: none)
    ferplus_weight: float = 0.0
    init_from: str = ""  # a trained model whose weights this run starts from (empty: random initialisation)
    snapshot_every: int = 0  # keep every Nth epoch's inference model in snapshots/ (ensemble members); 0: none

    @property
    def distilling(self) -> bool:
        return bool(self.teachers) or bool(self.ferplus_votes and self.ferplus_weight)

    def contract(self) -> ModelContract:
        return ModelContract(labels=labels_for(self.classes))


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> dict[int, float] | None:
    """Weights that lift rare classes (FER2013's `disgust` is 16x rarer than `happy`).

    `sqrt` lifts them less than full `balanced` inverse frequency, which costs
    overall accuracy on FER2013; both are scaled so the average sample weight is 1.
    """
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    inverse = np.where(counts > 0, counts.sum() / np.maximum(counts, 1.0), 0.0)
    if mode == "sqrt":
        inverse = np.sqrt(inverse)
    elif mode != "balanced":
        raise UsageError(f"unknown class weighting {mode!r}; use none, sqrt or balanced")
    inverse *= counts.sum() / float((inverse * counts).sum())
    return {k: float(w) for k, w in enumerate(inverse)}


def _lr_schedule(config: TrainConfig, steps_per_epoch: int):
    import keras

    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(config.warmup_epochs * steps_per_epoch, total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.1 if warmup else config.learning_rate,
        decay_steps=total - warmup,
        alpha=0.01,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


OPTIMIZERS = ("adamw", "sgd")


def _optimizer(config: TrainConfig, steps_per_epoch: int):
    import keras

    schedule = _lr_schedule(config, steps_per_epoch)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    raise UsageError(f"unknown optimizer {config.optimizer!r}; use {' or '.join(OPTIMIZERS)}")


def _compile(model, config: TrainConfig, steps_per_epoch: int) -> None:
    import keras

    if config.distilling:
        from emotion_edge.training.distill import accuracy_metric, distillation_loss

        loss = distillation_loss(config.distill_alpha if config.teachers else 0.0, config.distill_temperature,
                                 config.label_smoothing, config.ferplus_weight if config.ferplus_votes else 0.0)
        metrics = [accuracy_metric()]
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        metrics = ["accuracy"]
    model.compile(
        optimizer=_optimizer(config, steps_per_epoch),
        loss=loss,
        metrics=metrics,
        jit_compile=False,  # XLA was the slowest option for these nets on a CPU (training/EXPERIMENTS.md)
    )


def _float32_copy(model, config: TrainConfig):
    """The inference model in float32: a bf16-trained net keeps float32 weights, but its layers carry the
    mixed policy, which the int8 converter and the device's contract must not see."""
    import keras

    from emotion_edge.training.models import build_model

    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = build_model(config.arch, config.contract())
    finally:
        keras.mixed_precision.set_global_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def _callbacks(run: Path, config: TrainConfig, state: dict):
    """Keras callbacks: best-model export, resumable checkpoint, early stopping, CSV history."""
    import keras

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            accuracy = float((logs or {}).get("val_accuracy", 0.0))
            best = accuracy > state["best_val_accuracy"]
            snapshot = bool(config.snapshot_every) and (epoch + 1) % config.snapshot_every == 0
            inference = _float32_copy(self.model, config) if best or snapshot else None  # one copy for both saves
            if best:
                state.update(best_val_accuracy=accuracy, best_epoch=epoch + 1, wait=0)
                _atomic_save(inference, run / "model.keras")
            else:
                state["wait"] += 1
            state["epochs_done"] = epoch + 1
            if snapshot:
                snapshot_file = snapshot_path(run, epoch + 1)
                snapshot_file.parent.mkdir(exist_ok=True)
                _atomic_save(inference, snapshot_file)
            _atomic_save(self.model, run / "checkpoint.keras")
            write_json(run / "state.json", state)
            log.info("epoch %d: val_accuracy %.4f (best %.4f at %d)", epoch + 1, accuracy,
                     state["best_val_accuracy"], state["best_epoch"])
            if state["wait"] >= config.patience:
                log.info("early stop: no validation improvement for %d epochs", config.patience)
                self.model.stop_training = True

    return [
        Checkpoint(),
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=state["epochs_done"] > 0),
        keras.callbacks.TerminateOnNaN(),
    ]


def _warm_start(model, source: Path, arch: str) -> None:
    """Copy a trained model's weights into the freshly built one (same architecture and labels)."""
    import keras

    from emotion_edge.training.runfolder import model_file as find_model

    model_file = find_model(source, "--init-from")
    trained = keras.models.load_model(model_file, compile=False)
    try:
        model.set_weights(trained.get_weights())
    except ValueError as exc:
        raise UsageError(f"--init-from {model_file}: its weights do not fit --arch {arch} with these classes "
                         f"({str(exc).splitlines()[0]}); give a model of the same architecture and labels") from None
    log.info("starting from the weights of %s", model_file)


def _atomic_save(model, path: Path) -> None:
    with replacing(path, tmp=path.with_name(path.stem + ".tmp.keras")) as tmp:  # a kill mid-save keeps the last good file
        model.save(tmp)


def _prepare(split: Split, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    return normalize(split.images), np.eye(num_classes, dtype=np.float32)[split.labels]


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) and write every report; returns metrics.json's content. Keras' global dtype policy is
    the training precision's while this runs, and the caller's again after."""
    import keras

    previous = keras.mixed_precision.global_policy()
    try:
        return _train(config, resume)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _train(config: TrainConfig, resume: bool) -> dict:
    import keras

    from emotion_edge.training.fastpath import set_precision, training_dataset
    from emotion_edge.training.models import build_model

    run = Path(config.run_dir)
    state_path = run / "state.json"
    resuming = resume and state_path.exists() and (run / "checkpoint.keras").exists()
    if resuming:
        saved = json.loads((run / "config.json").read_text())
        # What may change on resume: how long to go on, where the data is, and which epochs to keep; never the
        # recipe. A run resumed without --snapshot-every keeps the snapshots it was started with.
        config = TrainConfig(**{**saved, "epochs": config.epochs, "run_dir": str(run), "data": config.data,
                                "snapshot_every": config.snapshot_every or saved.get("snapshot_every", 0)})
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "config.json", asdict(config))
    keras.utils.set_random_seed(config.seed)
    set_precision(config.precision)  # before any layer is built or loaded

    contract = config.contract()
    data = load_fer2013(config.data, skip_bad=config.skip_bad)
    splits = make_splits(data, contract.labels, config.protocol, config.seed)
    train_split = splits["train"]
    if config.limit:
        train_split = Split(train_split.images[: config.limit], train_split.labels[: config.limit])
    x_train, y_train = _prepare(train_split, contract.num_classes)
    x_val, y_val = _prepare(splits["val"], contract.num_classes)
    sample_weight = None
    if config.distilling:
        # Wide targets carry the teacher's outputs with each face; class weights become sample weights,
        # since Keras would read a class from the wide row's argmax.
        y_train, y_val = _distill_targets(config, data, contract, y_train, y_val)
        weights = class_weights(train_split.labels, contract.num_classes, config.class_weight)
        if weights is not None:
            sample_weight = np.asarray([weights[k] for k in train_split.labels], dtype=np.float32)
    steps_per_epoch = int(np.ceil(len(x_train) / config.batch_size))

    if resuming:
        state = json.loads(state_path.read_text())
        if config.distilling:
            import emotion_edge.training.distill  # noqa: F401  registers the loss and metric the checkpoint names
        model = keras.models.load_model(run / "checkpoint.keras")
        log.info("resuming after epoch %d", state["epochs_done"])
    else:
        state = {"epochs_done": 0, "best_val_accuracy": -1.0, "best_epoch": 0, "wait": 0}
        model = build_model(config.arch, contract)
        if config.init_from:
            _warm_start(model, Path(config.init_from), config.arch)
        _compile(model, config, steps_per_epoch)

    if state["epochs_done"] < config.epochs and state["wait"] < config.patience:
        # Seeded per resumed epoch, so a resumed run does not replay the first epochs' shuffles and crops.
        model.fit(
            training_dataset(x_train, y_train, config.batch_size, config.seed + state["epochs_done"], config.augment,
                             sample_weight),
            validation_data=(x_val, y_val),
            epochs=config.epochs,
            initial_epoch=state["epochs_done"],
            class_weight=None if config.distilling else class_weights(train_split.labels, contract.num_classes,
                                                                      config.class_weight),
            callbacks=_callbacks(run, config, state),
            shuffle=False,  # the dataset shuffles itself, every epoch
            verbose=2 if not os.isatty(1) else 1,
        )
    return write_run_reports(run, config, splits["val"], contract)


def _distill_targets(config: TrainConfig, data, contract: ModelContract, y_train: np.ndarray,
                     y_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The wide targets of `training.distill` for the official Training (after --limit) and PublicTest faces."""
    from emotion_edge.training.distill import (
        TeacherError,
        average_teachers,
        data_identity,
        load_ferplus_votes,
        load_teacher_outputs,
        official_rows,
        select_labels,
        wide_targets,
    )

    if config.protocol != "official" or data.skipped or not Path(config.data).is_file():
        raise TeacherError("distillation needs the official protocol on a complete FER2013 CSV (teacher outputs "
                           "and FER+ votes are keyed by CSV row); drop --protocol stratified, --skip-bad or folders")
    rows = {"train": official_rows(data.splits, data.labels, contract.labels, "train"),
            "val": official_rows(data.splits, data.labels, contract.labels, "val")}
    rows["train"] = rows["train"][: len(y_train)]
    if len(rows["val"]) != len(y_val) or len(rows["train"]) != len(y_train):
        raise TeacherError(f"{config.data}: the official splits hold {len(rows['train'])}/{len(rows['val'])} faces, "
                           f"the loaded ones {len(y_train)}/{len(y_val)}; report this as a bug")
    teacher = {name: None for name in rows}
    if config.teachers:
        identity = data_identity(config.data)
        outputs = average_teachers([load_teacher_outputs(path, identity) for path in config.teachers])
        log.info("distilling from %s (alpha %.2f, T %.1f)", outputs.source, config.distill_alpha,
                 config.distill_temperature)
        teacher = {name: select_labels(outputs.for_rows(r, name), outputs.labels, contract.labels)
                   for name, r in rows.items()}
    votes = mask = None
    if config.ferplus_votes and config.ferplus_weight:
        votes, mask = load_ferplus_votes(config.ferplus_votes, contract.labels, len(data))
    y = {"train": y_train, "val": y_val}
    wide = {name: wide_targets(y[name], teacher[name], None if votes is None else votes[r],
                               None if mask is None else mask[r]) for name, r in rows.items()}
    return wide["train"], wide["val"]


def write_run_reports(run: Path, config: TrainConfig, val: Split, contract: ModelContract) -> dict:
    """Reports on the validation split only: the test split is touched by `evaluate`, once per final model."""
    from emotion_edge.training.evaluate import load_any_model, predict_with_tta

    best = load_any_model(run / "model.keras")
    plot_curves(run / "history.csv", run / "curves.png")
    probs = predict_with_tta(best, val.images, config.tta)
    metrics = write_split_reports(run, "val", val.labels, probs, contract.labels)
    state = json.loads((run / "state.json").read_text())
    payload = {
        "arch": config.arch,
        "labels": list(contract.labels),
        "preprocessing": contract.preprocessing,
        "parameters": best.parameters,
        "macs": best.macs,
        "epochs_done": state["epochs_done"],
        "best_epoch": state["best_epoch"],
        "tta": config.tta,
        "val": metrics_dict(metrics),
    }
    write_json(run / "metrics.json", payload)
    return payload
