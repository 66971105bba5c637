"""Turn one face's noisy per-frame emotion probabilities into a steady reading.

Why: a 48x48 classifier flickers between neighbouring emotions (sad/neutral,
fear/surprise) from frame to frame as light, pose and blur change. Reporting
every argmax would publish a stream of spurious emotion changes.

Two mechanisms, because each fixes what the other cannot:

- An exponential moving average (EMA) of the probabilities damps frame noise
  at constant cost and memory, with `alpha` the weight of the newest frame.
- Hysteresis on the reported emotion: a challenger must beat the current
  emotion's smoothed probability by `switch_margin`, and keep that lead for
  `min_frames` consecutive updates. The EMA alone still flips back and forth
  when two emotions sit close together; the margin stops that dithering and
  the frame count stops one strong outlier, which the EMA only dilutes, from
  switching the reading.

One smoother belongs to one tracked face (see tracking.py): mixing two people's
frames would average their expressions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Dequantized int8 softmax outputs miss a sum of 1 by up to about n_classes/512;
# a larger gap means the caller passed logits or raw scores, not probabilities.
SUM_TOLERANCE = 0.05


@dataclass(frozen=True)
class SmootherConfig:
    alpha: float = 0.4
    switch_margin: float = 0.10
    min_frames: int = 3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.alpha) and 0.0 < self.alpha <= 1.0):
            raise ValueError(f"SmootherConfig field 'alpha': must be in (0, 1], got {self.alpha}")
        if not (math.isfinite(self.switch_margin) and 0.0 <= self.switch_margin < 1.0):
            raise ValueError(f"SmootherConfig field 'switch_margin': must be in [0, 1), got {self.switch_margin}")
        if isinstance(self.min_frames, bool) or not isinstance(self.min_frames, int) or self.min_frames < 1:
            raise ValueError(f"SmootherConfig field 'min_frames': must be an integer >= 1, got {self.min_frames!r}")


@dataclass(frozen=True, eq=False)
class SmoothedState:
    """The reading after one update.

    `confidence` is the smoothed probability of the reported `dominant`
    emotion; while a challenger is building its lead it may be below the
    largest entry of `probabilities`. `changed` is True when `dominant`
    differs from the previous update's, and on the first update, where
    nothing had been reported yet. eq=False: array fields have no single
    truth value to compare by.
    """

    dominant: int
    confidence: float
    probabilities: np.ndarray = field(repr=False)
    changed: bool


class EmotionSmoother:
    """EMA plus hysteresis over one face's probability vectors; create one per track."""

    def __init__(self, num_classes: int, config: SmootherConfig | None = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.config = config or SmootherConfig()
        self._smoothed: np.ndarray | None = None
        self._dominant = -1
        self._challenger = -1
        self._lead_frames = 0
        self._state: SmoothedState | None = None

    @property
    def state(self) -> SmoothedState | None:
        """The last update's reading, or None before the first."""
        return self._state

    def update(self, probs: np.ndarray) -> SmoothedState:
        p = self._validated(probs)
        if self._smoothed is None:
            # No history to smooth against: the first frame is the best estimate.
            self._smoothed = p
            self._dominant = int(np.argmax(p))
            changed = True
        else:
            alpha = self.config.alpha
            smoothed = alpha * p + (1.0 - alpha) * self._smoothed
            self._smoothed = smoothed / smoothed.sum()  # stop float drift from accumulating over hours
            changed = self._apply_hysteresis()

        probabilities = self._smoothed.copy()
        probabilities.flags.writeable = False  # the state is a snapshot; callers must not alter history
        self._state = SmoothedState(
            dominant=self._dominant,
            confidence=float(probabilities[self._dominant]),
            probabilities=probabilities,
            changed=changed,
        )
        return self._state

    def _apply_hysteresis(self) -> bool:
        """Count how long the leading challenger has held a margin over the reported emotion; switch when long enough."""
        smoothed = self._smoothed
        leader = int(np.argmax(smoothed))
        lead = smoothed[leader] - smoothed[self._dominant]
        if leader == self._dominant or lead <= self.config.switch_margin:
            self._challenger, self._lead_frames = -1, 0
            return False
        # The same challenger must hold the lead throughout; a different one starts over.
        self._lead_frames = self._lead_frames + 1 if leader == self._challenger else 1
        self._challenger = leader
        if self._lead_frames < self.config.min_frames:
            return False
        self._dominant = leader
        self._challenger, self._lead_frames = -1, 0
        return True

    def _validated(self, probs: np.ndarray) -> np.ndarray:
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (self.num_classes,):
            raise ValueError(
                f"expected a probability vector of {self.num_classes} classes, got shape {np.shape(probs)}"
            )
        if not np.all(np.isfinite(p)):
            raise ValueError(f"probabilities must be finite, got {p.tolist()}")
        if np.any(p < 0):
            raise ValueError(f"probabilities must be non-negative, got {p.tolist()}")
        total = float(p.sum())
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise ValueError(
                f"probabilities must sum to 1 (within {SUM_TOLERANCE}), got {total:.4f}; "
                "pass softmax outputs, not logits or scores"
            )
        # Renormalize so the small quantization error does not bias the EMA.
        return p / total
