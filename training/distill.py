"""Knowledge distillation: a teacher's outputs saved once, compactly; a student trained on them.

A teacher-outputs file (`emotion-edge teacher-outputs`, or the GPU campaign) is a compressed .npz holding, for
every Training and PublicTest row of one FER2013 CSV, the log of the teacher's averaged probabilities (flip
and optional augmented views) in float16, the FER2013 row indices they belong to, the labels they range over,
and the sha256 and size of the CSV file they were computed from. It holds neither images nor labels, so it
may be kept outside the data folder; a file computed from another CSV is refused by name and hash.

The loss (`DistillationLoss`) reads one wide `y_true` per face, so the teacher's outputs travel with each
face through tf.data's shuffling (or any other pipeline):

    [ one-hot label (C) | teacher probabilities (C) | FER+ vote shares (C) and their mask (1), optional ]

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(smoothed label, softmax(s))
           + ferplus_weight * mask * CE(FER+ shares, softmax(s))

where s and t are the student's and teacher's logits (the log of their probabilities: softmax(log p / T)
equals softmax(z / T) for p = softmax(z)). Written in `keras.ops` only, with no TensorFlow import, so the GPU
campaign (Keras on JAX) trains with the same loss.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
from keras import ops

from emotion_edge.device.contract import EMOTIONS
from emotion_edge.device.errors import EmotionEdgeError

log = logging.getLogger(__name__)

TEACHER_FORMAT = "emotion-edge-teacher-outputs-v1"
EPSILON = 1e-7
# FER+'s vote columns for FER2013's seven emotions (contempt, unknown and NF are dropped).
FERPLUS_COLUMNS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                   "sad": "sadness", "surprise": "surprise", "neutral": "neutral"}


class TeacherError(EmotionEdgeError, ValueError):
    """A teacher-outputs or FER+ votes file is missing, malformed or belongs to other data."""


@dataclass(frozen=True)
class DataIdentity:
    """The CSV file a teacher's outputs were computed from, as given (the .csv.gz's bytes when compressed)."""

    sha256: str
    size: int

    def short(self) -> str:
        return f"sha256 {self.sha256[:12]}..., {self.size:,} bytes"


def data_identity(path: str | Path) -> DataIdentity:
    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"{path}: distillation needs the FER2013 CSV file (.csv or .csv.gz), not a folder")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return DataIdentity(digest.hexdigest(), path.stat().st_size)


@dataclass(frozen=True)
class TeacherOutputs:
    """Per FER2013 row: the log of a teacher's (or an ensemble's) averaged probabilities over `labels`."""

    rows: np.ndarray  # int32 (n,), FER2013 row indices, ascending
    log_probs: np.ndarray  # float16 (n, len(labels))
    labels: tuple[str, ...]
    data: DataIdentity
    source: str  # what produced them: model path(s), views

    def probabilities(self) -> np.ndarray:
        p = np.exp(self.log_probs.astype(np.float32))
        return p / p.sum(axis=1, keepdims=True)

    def for_rows(self, rows: np.ndarray, where: str = "") -> np.ndarray:
        """Probabilities (len(rows), C) aligned with `rows`; every row must be present."""
        position = np.searchsorted(self.rows, rows)
        position = np.clip(position, 0, len(self.rows) - 1)
        missing = rows[self.rows[position] != rows]
        if missing.size:
            raise TeacherError(f"teacher outputs ({self.source}) lack {missing.size} {where} rows, first row "
                               f"{int(missing[0])}; recompute them with `emotion-edge teacher-outputs`")
        return self.probabilities()[position]


def from_probabilities(rows: np.ndarray, probs: np.ndarray, labels: Sequence[str], data: DataIdentity,
                       source: str) -> TeacherOutputs:
    order = np.argsort(rows, kind="stable")
    probs = np.asarray(probs, dtype=np.float64)[order]
    probs = probs / probs.sum(axis=1, keepdims=True)
    log_probs = np.log(np.clip(probs, EPSILON, 1.0)).astype(np.float16)
    return TeacherOutputs(np.asarray(rows, dtype=np.int32)[order], log_probs, tuple(labels), data, source)


def save_teacher_outputs(path: str | Path, outputs: TeacherOutputs) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        raise TeacherError(f"{path}: teacher outputs are saved as a .npz file; name it e.g. teacher.npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": TEACHER_FORMAT, "labels": list(outputs.labels), "data_sha256": outputs.data.sha256,
            "data_size": outputs.data.size, "source": outputs.source}
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, rows=outputs.rows.astype(np.int32), log_probs=outputs.log_probs.astype(np.float16),
                        meta=np.asarray(json.dumps(meta)))
    tmp.replace(path)
    return path


def load_teacher_outputs(path: str | Path, expect: DataIdentity | None = None) -> TeacherOutputs:
    """Load a teacher-outputs file; with `expect`, refuse one computed from another CSV."""
    path = Path(path)
    if not path.exists():
        raise TeacherError(f"{path}: no such teacher-outputs file; make one with `emotion-edge teacher-outputs`")
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            rows, log_probs = npz["rows"], npz["log_probs"]
    except (OSError, KeyError, ValueError) as exc:
        raise TeacherError(f"{path}: not a teacher-outputs file ({exc})") from exc
    if meta.get("format") != TEACHER_FORMAT:
        raise TeacherError(f"{path}: format {meta.get('format')!r}, expected {TEACHER_FORMAT!r}")
    outputs = TeacherOutputs(rows.astype(np.int64), log_probs, tuple(meta["labels"]),
                             DataIdentity(meta["data_sha256"], int(meta["data_size"])), meta.get("source", str(path)))
    if log_probs.shape != (len(rows), len(outputs.labels)):
        raise TeacherError(f"{path}: log_probs has shape {log_probs.shape}, "
                           f"expected ({len(rows)}, {len(outputs.labels)})")
    if expect is not None and outputs.data != expect:
        raise TeacherError(f"{path}: computed from another FER2013 file ({outputs.data.short()}), not the one given "
                           f"({expect.short()}); pass the CSV the teacher ran on, or recompute the outputs")
    return outputs


def average_teachers(outputs: Sequence[TeacherOutputs]) -> TeacherOutputs:
    """An ensemble: the teachers' probabilities averaged (all over the same rows, labels and data)."""
    if not outputs:
        raise TeacherError("no teacher outputs to average")
    first = outputs[0]
    for other in outputs[1:]:
        if other.labels != first.labels or other.data != first.data or not np.array_equal(other.rows, first.rows):
            raise TeacherError(f"teachers disagree on labels, data or rows ({first.source} vs {other.source}); "
                               "compute all of them from the same CSV with the same classes")
    if len(outputs) == 1:
        return first
    probs = np.mean([o.probabilities() for o in outputs], axis=0)
    return from_probabilities(first.rows, probs, first.labels, first.data, " + ".join(o.source for o in outputs))


def select_labels(probs: np.ndarray, have: Sequence[str], want: Sequence[str]) -> np.ndarray:
    """Columns of `want` from probabilities over `have`, renormalised (a 7-class teacher, a 5-class student)."""
    missing = [name for name in want if name not in have]
    if missing:
        raise TeacherError(f"teacher outputs cover {list(have)}, not the student's {missing}")
    picked = probs[:, [list(have).index(name) for name in want]]
    return picked / np.maximum(picked.sum(axis=1, keepdims=True), EPSILON)


def load_ferplus_votes(path: str | Path, labels: Sequence[str], num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """FER+ vote shares over `labels` (FER2013 order) for every FER2013 row, and a mask of rows with votes.

    Contempt, unknown and not-a-face votes are dropped and the rest renormalised; rows left with no vote get
    mask 0 (no auxiliary loss)."""
    path = Path(path)
    if not path.exists():
        raise TeacherError(f"{path}: no such FER+ votes file (ferplus-votes.csv, FERPlus' fer2013new.csv)")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [FERPLUS_COLUMNS[name] for name in labels]
        absent = [c for c in columns if c not in (reader.fieldnames or [])]
        if absent:
            raise TeacherError(f"{path}: header lacks FER+ vote column(s) {absent}")
        votes = np.asarray([[float(row[c] or 0) for c in columns] for row in reader], dtype=np.float32)
    if len(votes) != num_rows:
        raise TeacherError(f"{path}: {len(votes)} rows, but the FER2013 CSV has {num_rows}; "
                           "the votes file must describe the same rows in the same order")
    total = votes.sum(axis=1, keepdims=True)
    mask = (total[:, 0] > 0).astype(np.float32)
    return votes / np.maximum(total, 1.0), mask


def official_rows(splits: np.ndarray, labels: np.ndarray, wanted: Sequence[str], split: str) -> np.ndarray:
    """FER2013 row indices of one official split's faces whose emotion is in `wanted`, in file order: the
    same faces, in the same order, as `splits.make_splits(..., 'official')` gives."""
    keep = np.isin(labels, [EMOTIONS.index(name) for name in wanted])
    return np.flatnonzero((splits == split) & keep)


def wide_targets(one_hot: np.ndarray, teacher: np.ndarray | None, votes: np.ndarray | None,
                 mask: np.ndarray | None) -> np.ndarray:
    """[one-hot | teacher (the label itself when no teacher) | FER+ shares, mask (when given)] as float32."""
    parts = [one_hot, teacher if teacher is not None else one_hot]
    if votes is not None:
        parts += [votes, mask[:, None]]
    return np.concatenate(parts, axis=1).astype(np.float32)


def distillation_loss_fn(y_true, y_pred, alpha: float, temperature: float, label_smoothing: float,
                         ferplus_weight: float = 0.0):
    """Per-face loss (see the module docstring); backend-neutral keras.ops."""
    classes = int(y_pred.shape[-1])
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    one_hot, teacher = y_true[:, :classes], y_true[:, classes:2 * classes]
    student_log = ops.log(ops.clip(y_pred, EPSILON, 1.0))
    student_log = student_log - ops.logsumexp(student_log, axis=-1, keepdims=True)
    smoothed = one_hot * (1.0 - label_smoothing) + label_smoothing / classes
    ce = -ops.sum(smoothed * student_log, axis=-1)
    t = float(temperature)
    teacher_t = ops.softmax(ops.log(ops.clip(teacher, EPSILON, 1.0)) / t, axis=-1)
    student_t = ops.log_softmax(student_log / t, axis=-1)
    kd = ops.sum(teacher_t * (ops.log(ops.clip(teacher_t, EPSILON, 1.0)) - student_t), axis=-1) * (t * t)
    loss = alpha * kd + (1.0 - alpha) * ce
    if ferplus_weight and int(y_true.shape[-1]) > 2 * classes:
        votes, mask = y_true[:, 2 * classes:3 * classes], y_true[:, 3 * classes]
        loss = loss + ferplus_weight * mask * -ops.sum(votes * student_log, axis=-1)
    return loss


def distillation_loss(alpha: float = 0.5, temperature: float = 4.0, label_smoothing: float = 0.1,
                      ferplus_weight: float = 0.0):
    """A Keras loss object over the wide targets (serialisable, so checkpoints resume)."""
    return DistillationLoss(alpha=alpha, temperature=temperature, label_smoothing=label_smoothing,
                            ferplus_weight=ferplus_weight)


@keras.saving.register_keras_serializable(package="emotion_edge")
def label_accuracy(y_true, y_pred):
    """Top-1 accuracy against the one-hot label in the first C columns of the wide targets."""
    classes = int(y_pred.shape[-1])
    return ops.cast(ops.equal(ops.argmax(y_true[:, :classes], axis=-1), ops.argmax(y_pred, axis=-1)), "float32")


def accuracy_metric():
    """Named `accuracy`, so history.csv, the checkpoint callback and the curves read as in any other run."""
    return keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")


@keras.saving.register_keras_serializable(package="emotion_edge")
class DistillationLoss(keras.losses.Loss):
    """alpha * T^2 * KD + (1 - alpha) * smoothed CE (+ FER+ auxiliary CE) over the wide targets."""

    def __init__(self, alpha: float = 0.5, temperature: float = 4.0, label_smoothing: float = 0.1,
                 ferplus_weight: float = 0.0, name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.label_smoothing, self.ferplus_weight = float(label_smoothing), float(ferplus_weight)

    def call(self, y_true, y_pred):
        return distillation_loss_fn(y_true, y_pred, self.alpha, self.temperature, self.label_smoothing,
                                    self.ferplus_weight)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "temperature": self.temperature,
                "label_smoothing": self.label_smoothing, "ferplus_weight": self.ferplus_weight}


def compute_teacher_outputs(model_path: str | Path, data_path: str | Path, views: int = 0, seed: int = 1234,
                            strength: float = 0.5) -> TeacherOutputs:
    """Run a trained model over every Training and PublicTest face of a FER2013 CSV (never PrivateTest):
    each face's probabilities averaged with its mirror's, and with `views` augmented views' (each flip-averaged
    too). A .tflite model works as well as a .keras one."""
    from emotion_edge.training.evaluate import load_any_model, predict_with_tta
    from emotion_edge.training.fer2013 import load_fer2013
    from emotion_edge.training.gpu.augment import augment_faces

    identity = data_identity(data_path)
    data = load_fer2013(data_path)
    rows = np.flatnonzero(data.splits != "test")
    model = load_any_model(model_path)
    faces = data.images[rows]
    probs = predict_with_tta(model, faces, True)
    rng = np.random.default_rng(seed)
    for view in range(views):
        augmented = np.round(augment_faces(faces, rng, strength) * 255.0).astype(np.uint8)
        probs += predict_with_tta(model, augmented, True)
        log.info("teacher view %d of %d done", view + 1, views)
    source = f"{model_path} (flip-averaged" + (f", {views} augmented views at strength {strength})" if views else ")")
    return from_probabilities(rows, probs / (views + 1), model.contract.labels, identity, source)
