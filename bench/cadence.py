"""Mirrors together or on alternate frames: what each does to accuracy and to how fast a change is reported.

A flip-averaging model (its contract's flip_average) can see each face with its mirror in every frame's invoke
(`[pipeline] mirrors = "together"`, twice the crops) or the face on one frame and its mirror on the next
(`"alternate"`), leaving the smoother's moving average to blend the two views. This replays FER2013's
PrivateTest faces as short clips: each face is held for `--hold` frames, then the next face (another person,
usually another emotion) for as long, each frame jittered like a camera's (a shift of up to 2 px, a scale of
+-4%, sensor noise of 3 grey levels), through the shipped int8 model and the daemon's smoother (its default
config). Both modes are computed from the same per-frame outputs of both views, so they differ only in cadence.

Reported per mode: crops per face and frame (the classifier's cost), accuracy of the raw per-frame output,
accuracy of the reported (smoothed) emotion at the end of each hold, and, where the reported emotion changes
from one face to the next, how many frames after the switch the new one is reported (mean, 90th percentile).

    python bench/cadence.py [--data /work/shared/data/fer2013.csv.gz] [--faces 1000] [--hold 10]
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import cv2
import numpy as np

from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.smoothing import EmotionSmoother, SmootherConfig

MODES = ("together", "alternate")


def jittered(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One camera frame's version of a 48x48 face: shifted, scaled, with sensor noise."""
    size = face.shape[0]
    scale = rng.uniform(0.96, 1.04)
    dx, dy = rng.uniform(-2, 2, 2)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, scale)
    matrix[:, 2] += (dx, dy)
    moved = cv2.warpAffine(face, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.clip(moved + rng.normal(0, 3, moved.shape), 0, 255).astype(np.uint8)


def views(classifier: EmotionClassifier, crops: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each crop's probabilities seen as it is and mirrored (single views, batched)."""
    parts = {"original": [], "mirror": []}
    for view in parts:
        for i in range(0, len(crops), batch):
            parts[view].append(classifier.classify(crops[i : i + batch], view))
    return np.concatenate(parts["original"]), np.concatenate(parts["mirror"])


def replay(original: np.ndarray, mirror: np.ndarray, labels: np.ndarray, hold: int, mode: str,
           smoothing: SmootherConfig) -> dict[str, float]:
    """original/mirror: (faces, hold, classes) per-frame outputs; faces play one after another in one track."""
    smoother = EmotionSmoother(original.shape[-1], smoothing)
    raw_hits = end_hits = frames = 0
    reported = []  # per face: the reported emotion on each of its frames
    for face in range(len(labels)):
        shown = []
        for t in range(hold):
            frame = face * hold + t
            if mode == "together":
                p = (original[face, t] + mirror[face, t]) / 2.0
            else:  # as FacePipeline does: the face itself on the first frame, its mirror on the next, ...
                p = original[face, t] if frame % 2 == 0 else mirror[face, t]
            raw_hits += int(np.argmax(p) == labels[face])
            frames += 1
            shown.append(smoother.update(p).dominant)
        end_hits += int(shown[-1] == labels[face])
        reported.append(shown)
    delays = []
    for face in range(1, len(labels)):
        before, now = reported[face - 1][-1], reported[face]
        if now[-1] != before:  # the reading changed from one face to the next: when was it reported?
            delays.append(next(t for t, d in enumerate(now) if d == now[-1] and all(x == now[-1] for x in now[t:])) + 1)
    return {"raw": raw_hits / frames, "end": end_hits / len(labels), "changes": len(delays),
            "delay_mean": float(np.mean(delays)) if delays else float("nan"),
            "delay_p90": float(np.percentile(delays, 90)) if delays else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/fer2013.csv.gz"))
    parser.add_argument("--faces", type=int, default=1000, help="PrivateTest faces replayed (default 1000)")
    parser.add_argument("--hold", type=int, default=10, help="frames each face is held (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from emotion_edge.training.fer2013 import load_fer2013  # the workstation's loader; no TensorFlow

    data = load_fer2013(args.data)
    test = np.flatnonzero(data.splits == "test")
    rng = np.random.default_rng(args.seed)
    chosen = rng.permutation(test)[: args.faces]
    classifier = EmotionClassifier(packaged_model_path(), threads=os.cpu_count() or 1)
    names = classifier.labels
    keep = [i for i in chosen if data.labels[i] < len(names)]
    faces, labels = data.images[keep], data.labels[keep]
    crops = np.stack([jittered(face, rng) for face in faces for _ in range(args.hold)])
    original, mirror = views(classifier, crops)
    original = original.reshape(len(faces), args.hold, -1)
    mirror = mirror.reshape(len(faces), args.hold, -1)
    smoothing = SmootherConfig()
    print(f"# cadence: {len(faces)} FER2013 PrivateTest faces, each held {args.hold} frames, jittered; model "
          f"{packaged_model_path().name}; smoother alpha {smoothing.alpha}, margin {smoothing.switch_margin}, "
          f"min_frames {smoothing.min_frames}")
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| mirrors | crops per face and frame | raw per-frame accuracy | reported accuracy at hold's end | "
          "changes | frames to report a change: mean | 90th percentile |")
    print("|---|---|---|---|---|---|---|")
    for mode in MODES:
        r = replay(original, mirror, labels, args.hold, mode, smoothing)
        print(f"| {mode} | {2 if mode == 'together' else 1} | {r['raw']:.4f} | {r['end']:.4f} | {r['changes']} | "
              f"{r['delay_mean']:.2f} | {r['delay_p90']:.1f} |")


if __name__ == "__main__":
    main()
