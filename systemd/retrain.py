"""`emotion-edge retrain`: train -> quantize (its parity gate) -> not worse than the deployed model -> deploy.

Each stage can stop the chain, and none is skipped: a model that fails the
parity gate or scores below the deployed one on PublicTest never reaches a
device. PublicTest, not PrivateTest: keeping one model over another is a choice,
and choices are made on the validation split; PrivateTest stays the test set,
measured once per final model (quantize's parity report still shows it).

The stages are passed in as callables so the decisions are tested without
TensorFlow; `_run_retrain` in systemd/cli.py wires the real ones (TensorFlow
loads only there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    model: Path
    gate_failures: tuple[str, ...]  # the quantize parity gate's reasons; empty when it passed
    public_test_accuracy: float | None  # the int8 model on PublicTest, as quantize measured it


@dataclass(frozen=True)
class Stages:
    train: Callable[[], None]
    quantize: Callable[[], Candidate]
    baseline_accuracy: Callable[[], float | None]  # the deployed model on PublicTest; None when nothing is deployed
    deploy: Callable[[Path], int]  # exit status of the deploy


@dataclass(frozen=True)
class RetrainOutcome:
    exit_code: int
    reason: str
    model: Path | None = None


def not_worse(candidate: float | None, baseline: float | None, tolerance_points: float = 0.0) -> str | None:
    """None when the candidate may replace the baseline, else why not (accuracies in 0-1, tolerance in points)."""
    if candidate is None:
        return "the new model has no PublicTest accuracy (quantize found no PublicTest faces in the data)"
    if baseline is None:
        return None
    if 100.0 * (baseline - candidate) > tolerance_points:
        return (f"the new model scores {candidate:.2%} on PublicTest, the deployed one {baseline:.2%} "
                f"(allowed loss {tolerance_points:.2f} points); keeping the deployed model")
    return None


def run_retrain(stages: Stages, tolerance_points: float = 0.0, deploy: bool = True) -> RetrainOutcome:
    stages.train()
    candidate = stages.quantize()
    if candidate.gate_failures:
        return RetrainOutcome(1, "parity gate failed: " + "; ".join(candidate.gate_failures), candidate.model)
    baseline = stages.baseline_accuracy()
    refusal = not_worse(candidate.public_test_accuracy, baseline, tolerance_points)
    if refusal:
        return RetrainOutcome(1, refusal, candidate.model)
    verdict = (f"{candidate.public_test_accuracy:.2%} on PublicTest vs deployed "
               f"{'none' if baseline is None else f'{baseline:.2%}'}")
    log.info("new model passes: %s", verdict)
    if not deploy:
        return RetrainOutcome(0, f"not deployed (--no-deploy); {verdict}", candidate.model)
    code = stages.deploy(candidate.model)
    return RetrainOutcome(code, f"deployed; {verdict}" if code == 0 else "deploy failed (see above)", candidate.model)


def accuracy_on_public_test(model: Path, data: str) -> float:
    """A model's int8 accuracy on the data's PublicTest, measured here (for a fair baseline)."""
    from emotion_edge.device.model.classifier import EmotionClassifier
    from emotion_edge.systemd.deploy import split_accuracy

    return split_accuracy(EmotionClassifier(model), data, "val")[0]


def quantize_candidate(run_dir: Path, out: Path, options: object) -> Candidate:
    from emotion_edge.quantize import quantize

    result = quantize(run_dir, out, options)  # type: ignore[arg-type]
    val = next((p.int8_accuracy for p in result.parity if p.split == "val"), None)
    return Candidate(result.model_path, tuple(result.failures), val)
