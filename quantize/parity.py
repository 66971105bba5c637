"""Prove the int8 model agrees with its float model: accuracy, agreement, probability gaps, latency."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from emotion_edge.training.splits import Split


@dataclass(frozen=True)
class SplitParity:
    split: str
    samples: int
    float_accuracy: float
    int8_accuracy: float
    agreement: float  # share of faces where both models pick the same emotion
    max_prob_diff: float
    mean_prob_diff: float
    per_class_recall_delta: dict[str, float]  # int8 minus float, in points

    @property
    def accuracy_drop_points(self) -> float:
        return 100.0 * (self.float_accuracy - self.int8_accuracy)


@dataclass(frozen=True)
class ParityGate:
    max_drop_points: float = 1.0
    min_agreement: float = 0.97

    def failures(self, results: list[SplitParity]) -> list[str]:
        out = []
        for r in results:
            if r.accuracy_drop_points > self.max_drop_points:
                out.append(f"{r.split}: int8 loses {r.accuracy_drop_points:.2f} points (limit {self.max_drop_points:.2f})")
            if r.agreement < self.min_agreement:
                out.append(f"{r.split}: int8 agrees on {r.agreement:.2%} of faces (need {self.min_agreement:.2%})")
        return out


def _recall(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    mask = y == k
    return float(np.mean(pred[mask] == k)) if mask.any() else 0.0


def compare(split: str, data: Split, float_probs: np.ndarray, int8_probs: np.ndarray, labels: tuple[str, ...]) -> SplitParity:
    f_pred, q_pred = float_probs.argmax(1), int8_probs.argmax(1)
    gap = np.abs(float_probs - int8_probs)
    return SplitParity(
        split=split,
        samples=len(data),
        float_accuracy=float(np.mean(f_pred == data.labels)),
        int8_accuracy=float(np.mean(q_pred == data.labels)),
        agreement=float(np.mean(f_pred == q_pred)),
        max_prob_diff=float(gap.max()),
        mean_prob_diff=float(gap.mean()),
        per_class_recall_delta={
            name: 100.0 * (_recall(data.labels, q_pred, k) - _recall(data.labels, f_pred, k)) for k, name in enumerate(labels)
        },
    )


def to_dict(result: SplitParity) -> dict:
    return {**asdict(result), "accuracy_drop_points": result.accuracy_drop_points}


def format_table(results: list[SplitParity]) -> str:
    lines = ["| split | faces | float acc | int8 acc | drop (pts) | agreement | max prob diff |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.split} | {r.samples} | {r.float_accuracy:.2%} | {r.int8_accuracy:.2%} | "
                     f"{r.accuracy_drop_points:+.2f} | {r.agreement:.2%} | {r.max_prob_diff:.3f} |")
    return "\n".join(lines)
