"""What a researcher expects from a run: curves, confusion matrix, classification report, metrics."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_edge.device.atomic import write_atomic


@dataclass(frozen=True)
class Metrics:
    split: str
    samples: int
    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]
    confusion: list[list[int]]


def compute_metrics(split: str, y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> Metrics:
    from sklearn.metrics import confusion_matrix, f1_score

    y_pred = probs.argmax(axis=1)
    classes = list(range(len(labels)))
    per_class = f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    return Metrics(
        split=split,
        samples=int(len(y_true)),
        accuracy=float(np.mean(y_pred == y_true)),
        macro_f1=float(np.mean(per_class)),
        per_class_f1={name: float(f) for name, f in zip(labels, per_class)},
        confusion=confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    )


def write_json(path: Path, payload: dict) -> None:
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n", tmp=path.with_suffix(path.suffix + ".tmp"))


def write_classification_report(out_dir: Path, y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], stem: str) -> None:
    from sklearn.metrics import classification_report

    kwargs = dict(labels=list(range(len(labels))), target_names=list(labels), digits=4, zero_division=0)
    y_pred = probs.argmax(axis=1)
    (out_dir / f"{stem}.txt").write_text(classification_report(y_true, y_pred, **kwargs))
    write_json(out_dir / f"{stem}.json", classification_report(y_true, y_pred, output_dict=True, **kwargs))


def plot_confusion_matrix(path: Path, metrics: Metrics, labels: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(metrics.confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n({int(counts[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{metrics.split}: accuracy {metrics.accuracy:.2%}, macro-F1 {metrics.macro_f1:.3f}")
    fig.colorbar(image, ax=ax, fraction=0.046, label="row-normalized rate")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(history_csv: Path, path: Path) -> None:
    """Train vs validation accuracy and loss per epoch, from Keras' CSVLogger file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in ((ax_acc, "accuracy"), (ax_loss, "loss")):
        ax.plot(epochs, [float(r[key]) for r in rows], label=f"train {key}")
        if f"val_{key}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows], label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_split_reports(out_dir: Path, split: str, y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> Metrics:
    """confusion_matrix.png, classification_report.{txt,json} and metrics for one split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(split, y_true, probs, labels)
    plot_confusion_matrix(out_dir / "confusion_matrix.png", metrics, labels)
    write_classification_report(out_dir, y_true, probs, labels, "classification_report")
    return metrics


def metrics_dict(metrics: Metrics) -> dict:
    return asdict(metrics)
