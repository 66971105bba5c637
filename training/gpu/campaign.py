"""Teachers, their outputs and the distilled student on a lent GPU host, Keras 3 on JAX, in one command.

Run THERE (the checkout's root, the pack folder carried; the host has JAX and PyTorch, no TensorFlow, and this
checkout is not installed there, so run the file, not the module):

    KERAS_BACKEND=jax python training/gpu/campaign.py --pack runs/gpu-pack --out "$OUT"

It writes to --out: `<name>.keras` (float32 inference models: each teacher, then the student), `<name>.npz`
(each teacher's flip-averaged outputs over Training and PublicTest, and `ensemble.npz`, in `training.distill`'s
format keyed by the CSV the pack came from), `<name>.history.csv` (loss and PublicTest accuracy per epoch) and
`campaign.json` (the plan, epochs, seconds and flip-averaged PublicTest accuracy of every model). PrivateTest
is not in the pack: selection (best epoch) is on PublicTest only. Back here, with TensorFlow:

    emotion-edge evaluate runs/gpu/student-edge-vgg.keras --data ../shared/data/fer2013.csv.gz --split PublicTest --tta
    emotion-edge train ... --teacher runs/gpu/ensemble.npz          (a longer CPU distillation from them)
    emotion-edge quantize runs/gpu/student-edge-vgg.keras --out models/edge-vgg.tflite --data ...

Time, within the device tool's 10-minute command limit (600 s). --budget-s 510 is the wall-clock budget from
the script's start to the last file written, leaving 90 s of slack, because every model trains at least one
epoch and its first epoch includes XLA compilation (assumed 20-40 s a model on a GPU). Epochs are not fixed in
advance: `TimeBudget` re-plans after every epoch (planned = min(--max-epochs, done + seconds left in the phase /
mean epoch seconds, the first, compiling epoch left out of the mean) and the per-epoch cosine learning rate
follows the plan, so a slower or faster GPU gets fewer or more epochs, never a timeout. The arithmetic for an
H100 in bf16 (estimates: no GPU was lent when this was written; campaign.json records the real figures):

  imports and pack decode          ~15 s   (the decode took 7.3 s on this busy workstation)
  teachers: 0.6 x (510 - 15)       ~297 s  -> ~148 s each, ~30 s of it compiling
    edge-vgg-l: 0.28 G-MAC forward = ~1.7 GFLOP per training image; at an effective 20-30 TFLOP/s on 48x48
    convolutions, 12-18k img/s: 28,709 faces + PublicTest validation in ~2.5 s -> ~45 epochs each
  teacher outputs                  ~5 s each (32,298 faces x 2 mirrors, inference only)
  student: the rest - 25 s saving  ~160 s  -> ~130 s after compiling
    edge-vgg (70 M MACs, 4x cheaper) is bound by the numpy augmentation instead: 2,800 img/s on one thread of
    this busy workstation, assume ~15-20k img/s from 8 threads on a free host: ~2 s an epoch -> ~65 epochs
  total                            ~500 s of the 600 s limit
Batch 256 with SGD-Nesterov at learning rate 0.1 (0.05 x batch/128), 2 warm-up epochs, weight decay 5e-4.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

STARTED = time.monotonic()  # the budget counts from here: imports and the pack's decode included
os.environ.setdefault("KERAS_BACKEND", "jax")
REPO = Path(__file__).resolve().parents[2]

log = logging.getLogger("campaign")


def _import_checkout() -> None:
    """Make `emotion_edge.*` importable from the checkout without installing it (the GPU host's case): the
    package's folders (device/, training/, ...) sit at the repository root under their own names."""
    try:
        import emotion_edge.training.models  # noqa: F401  installed (the workstation)
        return
    except ImportError:
        pass
    package = types.ModuleType("emotion_edge")
    package.__path__ = [str(REPO / "cli"), str(REPO)]
    sys.modules["emotion_edge"] = package


_import_checkout()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from emotion_edge.device.contract import EMOTIONS, ModelContract, average_mirrors, normalize, with_mirrors  # noqa: E402
from emotion_edge.training.distill import (  # noqa: E402
    DataIdentity,
    accuracy_metric,
    average_teachers,
    distillation_loss,
    from_probabilities,
    save_teacher_outputs,
)
from emotion_edge.training.gpu.augment import augment_faces  # noqa: E402
from emotion_edge.training.gpu.pack import Pack, load_pack  # noqa: E402
from emotion_edge.training.models import build_model, count_macs  # noqa: E402


@dataclass
class CampaignConfig:
    pack: str
    out: str
    teachers: list[str] = field(default_factory=lambda: ["edge-vgg-l", "edge-vgg-l"])
    student: str = "edge-vgg"
    budget_s: float = 510.0
    teacher_share: float = 0.6  # of the time left after loading
    max_epochs: int = 300
    batch_size: int = 256
    learning_rate: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    distill_alpha: float = 0.7
    distill_temperature: float = 4.0
    precision: str = "auto"  # auto: bf16 on a GPU, fp32 on a CPU
    workers: int = 8
    seed: int = 1234
    limit: int = 0  # first N Training faces only (a smoke run on a CPU)
    steps_per_epoch: int = 0  # 0: the whole Training split each epoch (a smoke run sets a few)


class AugmentedFaces(keras.utils.PyDataset):
    """Shuffled batches of augmented faces with their (possibly wide) targets; numpy only, thread workers."""

    def __init__(self, faces: np.ndarray, targets: np.ndarray, batch_size: int, seed: int, steps: int = 0,
                 workers: int = 4):
        super().__init__(workers=workers, use_multiprocessing=False)
        self.faces, self.targets, self.batch_size, self.seed = faces, targets, batch_size, seed
        self.steps = steps or max(1, len(faces) // batch_size)  # whole batches: one compiled step shape
        self.epoch = 0
        self.order = np.random.default_rng([seed, 0]).permutation(len(faces))

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        start = (index * self.batch_size) % max(1, len(self.order) - self.batch_size + 1)
        picked = self.order[start:start + self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return augment_faces(self.faces[picked][..., None], rng), self.targets[picked]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.faces))


class TimeBudget(keras.callbacks.Callback):
    """Plans epochs from measured epoch times so the phase ends by its deadline; per-epoch warm-up and cosine
    learning rate along the plan; keeps the weights of the best PublicTest epoch."""

    def __init__(self, deadline: float, max_epochs: int, peak_lr: float, warmup_epochs: int):
        super().__init__()
        self.deadline, self.max_epochs = deadline, max_epochs
        self.peak_lr, self.warmup_epochs = peak_lr, warmup_epochs
        self.planned = max_epochs
        self.durations: list[float] = []
        self.best_accuracy, self.best_epoch, self.best_weights = -1.0, 0, None
        self._started = 0.0

    def learning_rate(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.peak_lr * (epoch + 1) / (self.warmup_epochs + 1)
        span = max(1, self.planned - self.warmup_epochs)
        progress = min(1.0, (epoch - self.warmup_epochs) / span)
        return self.peak_lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()
        self.model.optimizer.learning_rate = self.learning_rate(epoch)

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.durations.append(now - self._started)
        typical = float(np.mean(self.durations[1:] if len(self.durations) > 1 else self.durations))
        self.planned = min(self.max_epochs, epoch + 1 + int(max(0.0, self.deadline - now) // max(typical, 1e-3)))
        accuracy = float((logs or {}).get("val_accuracy", 0.0))
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch + 1
            self.best_weights = [np.array(w) for w in self.model.get_weights()]
        log.info("epoch %d of %d planned: %.1f s, lr %.4f, PublicTest %.4f (best %.4f at %d)", epoch + 1,
                 self.planned, self.durations[-1], self.learning_rate(epoch), accuracy, self.best_accuracy,
                 self.best_epoch)
        if epoch + 1 >= self.planned:
            self.model.stop_training = True


def _precision(config: CampaignConfig) -> str:
    if config.precision != "auto":
        return config.precision
    import jax

    return "bf16" if jax.default_backend() == "gpu" else "fp32"


def _float32_copy(model: keras.Model, arch: str, contract: ModelContract) -> keras.Model:
    """The inference model in float32 (a bf16-trained net's layers carry the mixed policy)."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = build_model(arch, contract)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def predict_flip_averaged(model: keras.Model, faces: np.ndarray) -> np.ndarray:
    probs = model.predict(normalize(with_mirrors(faces)), batch_size=1024, verbose=0)
    return average_mirrors(np.asarray(probs, dtype=np.float64))


@dataclass
class Trained:
    name: str
    arch: str
    model: keras.Model
    epochs: int
    best_epoch: int
    seconds: float
    val_accuracy_tta: float
    val_accuracy_per_epoch: list[float]


def train_one(name: str, arch: str, config: CampaignConfig, contract: ModelContract, x: np.ndarray,
              targets: np.ndarray, x_val: np.ndarray, val_targets: np.ndarray, y_val: np.ndarray,
              deadline: float, loss, seed: int) -> Trained:
    started = time.monotonic()
    keras.utils.set_random_seed(seed)
    model = build_model(arch, contract)
    model.compile(optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum, nesterov=True,
                                                 weight_decay=config.weight_decay),
                  loss=loss, metrics=[accuracy_metric()])
    log.info("%s: %s, %d parameters, %.0f M MACs, %.0f s to go", name, arch, model.count_params(),
             count_macs(model) / 1e6, deadline - started)
    budget = TimeBudget(deadline, config.max_epochs, config.learning_rate, config.warmup_epochs)
    out = Path(config.out)
    model.fit(AugmentedFaces(x, targets, config.batch_size, seed, config.steps_per_epoch, config.workers),
              validation_data=(normalize(x_val), val_targets), validation_batch_size=1024,
              epochs=config.max_epochs, callbacks=[budget, keras.callbacks.CSVLogger(str(out / f"{name}.history.csv"))],
              verbose=2)
    if budget.best_weights is not None:
        model.set_weights(budget.best_weights)
    inference = _float32_copy(model, arch, contract)
    inference.save(out / f"{name}.keras")
    accuracy = float(np.mean(predict_flip_averaged(inference, x_val).argmax(axis=1) == y_val))
    with open(out / f"{name}.history.csv", newline="") as handle:
        per_epoch = [float(row["val_accuracy"]) for row in csv.DictReader(handle)]
    log.info("%s: %d epochs (best %d) in %.0f s, PublicTest %.4f flip-averaged", name, len(budget.durations),
             budget.best_epoch, time.monotonic() - started, accuracy)
    return Trained(name, arch, inference, len(budget.durations), budget.best_epoch, time.monotonic() - started,
                   accuracy, per_epoch)


def run_campaign(config: CampaignConfig) -> dict:
    started = STARTED
    end = started + config.budget_s
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    precision = _precision(config)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    log.info("Keras %s on %s, precision %s", keras.__version__, keras.backend.backend(), precision)

    pack: Pack = load_pack(config.pack)
    identity = DataIdentity(pack.data_sha256, pack.data_size)
    contract = ModelContract(labels=EMOTIONS)
    x, y, train_rows = pack.split("train")
    x_val, y_val, val_rows = pack.split("val")
    if config.limit:
        x, y, train_rows = x[: config.limit], y[: config.limit], train_rows[: config.limit]
    eye = np.eye(len(EMOTIONS), dtype=np.float32)
    one_hot, val_one_hot = eye[y], eye[y_val]
    plain = distillation_loss(alpha=0.0, label_smoothing=config.label_smoothing)  # smoothed CE on [label | label]
    log.info("pack: %d Training, %d PublicTest faces, loaded in %.1f s", len(x), len(x_val), time.monotonic() - started)

    summary: dict = {"config": asdict(config), "precision": precision, "keras": keras.__version__, "models": []}
    teacher_end = time.monotonic() + config.teacher_share * (end - time.monotonic())
    outputs = []
    for i, arch in enumerate(config.teachers):
        deadline = time.monotonic() + (teacher_end - time.monotonic()) / (len(config.teachers) - i)
        name = f"teacher{i + 1}-{arch}"
        trained = train_one(name, arch, config, contract, x, np.concatenate([one_hot, one_hot], axis=1), x_val,
                            np.concatenate([val_one_hot, val_one_hot], axis=1), y_val, deadline, plain,
                            config.seed + i)
        rows = np.concatenate([train_rows, val_rows])
        probs = predict_flip_averaged(trained.model, np.concatenate([x, x_val]))
        source = f"{name}.keras (GPU campaign, flip-averaged)"
        outputs.append(from_probabilities(rows, probs, EMOTIONS, identity, source))
        save_teacher_outputs(out / f"{name}.npz", outputs[-1])
        summary["models"].append(_entry(trained))
        write_summary(out, summary)

    student_targets = one_hot, val_one_hot
    alpha = 0.0
    if outputs:
        ensemble = average_teachers(outputs)
        save_teacher_outputs(out / "ensemble.npz", ensemble)
        student_targets = ensemble.for_rows(train_rows, "train"), ensemble.for_rows(val_rows, "val")
        summary["ensemble_val_accuracy_tta"] = float(np.mean(student_targets[1].argmax(axis=1) == y_val))
        log.info("teacher ensemble: PublicTest %.4f flip-averaged", summary["ensemble_val_accuracy_tta"])
        alpha = config.distill_alpha
    loss = distillation_loss(alpha, config.distill_temperature, config.label_smoothing)
    trained = train_one(f"student-{config.student}", config.student, config, contract, x,
                        np.concatenate([one_hot, student_targets[0]], axis=1).astype(np.float32), x_val,
                        np.concatenate([val_one_hot, student_targets[1]], axis=1).astype(np.float32), y_val,
                        end - 25.0, loss, config.seed + 100)
    summary["models"].append(_entry(trained))
    summary["seconds"] = time.monotonic() - started
    write_summary(out, summary)
    return summary


def _entry(trained: Trained) -> dict:
    return {"name": trained.name, "arch": trained.arch, "parameters": int(trained.model.count_params()),
            "macs": count_macs(trained.model), "epochs": trained.epochs, "best_epoch": trained.best_epoch,
            "seconds": round(trained.seconds, 1), "val_accuracy_tta": trained.val_accuracy_tta,
            "val_accuracy_per_epoch": trained.val_accuracy_per_epoch}


def write_summary(out: Path, summary: dict) -> None:
    (out / "campaign.json").write_text(json.dumps(summary, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> CampaignConfig:
    defaults = CampaignConfig(pack="", out="")
    p = argparse.ArgumentParser(description="Teachers and a distilled student on a GPU, Keras on JAX, in one "
                                            "time-boxed command.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pack", required=True, help="folder from `python -m emotion_edge.training.gpu.pack` (carried)")
    p.add_argument("--out", default=os.environ.get("OUT", "runs/gpu"), help="output folder ($OUT on the device tool)")
    p.add_argument("--teachers", default=",".join(defaults.teachers),
                   help="comma-separated teacher architectures, averaged into the ensemble ('' for none)")
    p.add_argument("--student", default=defaults.student)
    p.add_argument("--budget-s", type=float, default=defaults.budget_s, help="wall-clock seconds for everything")
    p.add_argument("--teacher-share", type=float, default=defaults.teacher_share)
    p.add_argument("--max-epochs", type=int, default=defaults.max_epochs, help="cap per model (time decides first)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="peak SGD-Nesterov rate")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--distill-alpha", type=float, default=defaults.distill_alpha)
    p.add_argument("--distill-temperature", type=float, default=defaults.distill_temperature)
    p.add_argument("--precision", default=defaults.precision, choices=["auto", "bf16", "fp32"])
    p.add_argument("--workers", type=int, default=defaults.workers, help="augmentation threads")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--limit", type=int, default=0, help="first N Training faces only (smoke runs)")
    p.add_argument("--steps-per-epoch", type=int, default=0, help="0: all of Training each epoch (smoke runs: a few)")
    a = p.parse_args(argv)
    return CampaignConfig(pack=a.pack, out=a.out, teachers=[t for t in a.teachers.split(",") if t.strip()],
                          student=a.student, budget_s=a.budget_s, teacher_share=a.teacher_share,
                          max_epochs=a.max_epochs, batch_size=a.batch_size, learning_rate=a.learning_rate,
                          weight_decay=a.weight_decay, distill_alpha=a.distill_alpha,
                          distill_temperature=a.distill_temperature, precision=a.precision, workers=a.workers,
                          seed=a.seed, limit=a.limit, steps_per_epoch=a.steps_per_epoch)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = parse_args(argv)
    summary = run_campaign(config)
    for entry in summary["models"]:
        print(f"{entry['name']}: {entry['epochs']} epochs (best {entry['best_epoch']}), {entry['seconds']} s, "
              f"PublicTest {entry['val_accuracy_tta']:.4f} flip-averaged")
    print(f"total {summary['seconds']:.0f} s; files in {config.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
