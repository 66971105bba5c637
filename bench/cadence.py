"""Mirrors and classification cadence: what each does to accuracy and to how fast a change is reported.

A flip-averaging model (its contract's flip_average) can see each face with its mirror in every frame's invoke
(`[pipeline] mirrors = "together"`, twice the crops) or the face on one frame and its mirror on the next
(`"alternate"`), leaving the smoother's moving average to blend the two views. This replays FER2013's
PrivateTest faces as short clips: each face is held for `--hold` frames, then the next face (another person,
usually another emotion) for as long, each frame jittered like a camera's (a shift of up to 2 px, a scale of
+-4%, sensor noise of 3 grey levels), through the shipped int8 model and the daemon's smoother (its default
config). Every setting is computed from the same per-frame outputs of both views, so they differ only in cadence.

`[pipeline] classify_every` N classifies a tracked face on every Nth frame only; on the frames between, the
smoother either holds its state (`hold`, fewer smoother updates: its `min_frames` then counts classifications)
or is fed the face's last output again (`repeat`, the smoother's frame count kept), as FacePipeline does.
With mirrors alternate the view alternates from one classification to the next.

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

# (mirrors, classify_every, what the smoother gets between classifications)
SETTINGS = (("together", 1, "-"), ("alternate", 1, "-"), ("alternate", 2, "repeat"), ("alternate", 2, "hold"),
            ("alternate", 3, "repeat"), ("alternate", 3, "hold"), ("together", 2, "repeat"))


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


def replay(original: np.ndarray, mirror: np.ndarray, labels: np.ndarray, hold: int, mirrors: str,
           smoothing: SmootherConfig, classify_every: int = 1, between: str = "repeat") -> dict[str, float]:
    """original/mirror: (faces, hold, classes) per-frame outputs; faces play one after another in one track.

    Every phase of the classification cadence against the faces' switches is played and pooled (a change comes
    at any frame of the cadence, not only on a classified one).
    """
    runs = [replay_phase(original, mirror, labels, hold, mirrors, smoothing, classify_every, between, phase)
            for phase in range(classify_every)]
    delays = np.concatenate([r[3] for r in runs])
    return {"raw": sum(r[0] for r in runs) / sum(r[1] for r in runs), "end": float(np.mean([r[2] for r in runs])),
            "changes": len(delays) / len(runs),
            "delay_mean": float(np.mean(delays)) if len(delays) else float("nan"),
            "delay_p90": float(np.percentile(delays, 90)) if len(delays) else float("nan")}


def replay_phase(original: np.ndarray, mirror: np.ndarray, labels: np.ndarray, hold: int, mirrors: str,
                 smoothing: SmootherConfig, classify_every: int, between: str,
                 phase: int) -> tuple[int, int, float, np.ndarray]:
    """One phase: a frame is classified when its index plus `phase` is a multiple of `classify_every` (the
    pipeline's cadence, shared by all faces); between classifications the smoother is fed the last output again
    (`repeat`) or not at all (`hold`). Returns raw hits, classified frames, accuracy at holds' ends, delays."""
    smoother = EmotionSmoother(original.shape[-1], smoothing)
    raw_hits = end_hits = classified = 0
    reported = []  # per face: the reported emotion on each of its frames
    last = None
    for face in range(len(labels)):
        shown = []
        for t in range(hold):
            frame = face * hold + t + phase
            if frame % classify_every == 0 or last is None:
                if mirrors == "together":
                    p = (original[face, t] + mirror[face, t]) / 2.0
                else:  # as FacePipeline does: the face itself on one classification, its mirror on the next, ...
                    p = original[face, t] if (frame // classify_every) % 2 == 0 else mirror[face, t]
                raw_hits += int(np.argmax(p) == labels[face])
                classified += 1
                last = p
                shown.append(smoother.update(p).dominant)
            elif between == "repeat":
                shown.append(smoother.update(last).dominant)
            else:
                shown.append(smoother.state.dominant)
        end_hits += int(shown[-1] == labels[face])
        reported.append(shown)
    delays = []
    for face in range(1, len(labels)):
        before, now = reported[face - 1][-1], reported[face]
        if now[-1] != before:  # the reading changed from one face to the next: when was it reported?
            delays.append(next(t for t, d in enumerate(now) if d == now[-1] and all(x == now[-1] for x in now[t:])) + 1)
    return raw_hits, classified, end_hits / len(labels), np.asarray(delays, dtype=float)


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
    print("| mirrors | classify every | between | crops per face and frame | raw accuracy (classified frames) | "
          "reported accuracy at hold's end | changes | frames to report a change: mean | 90th percentile | "
          "mean at 15 fps |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mirrors, every, between in SETTINGS:
        r = replay(original, mirror, labels, args.hold, mirrors, smoothing, every, between)
        crops = (2 if mirrors == "together" else 1) / every
        print(f"| {mirrors} | {every} | {between} | {crops:.2f} | {r['raw']:.4f} | {r['end']:.4f} | {r['changes']:.0f} | "
              f"{r['delay_mean']:.2f} | {r['delay_p90']:.1f} | {1000 * r['delay_mean'] / 15:.0f} ms |")


if __name__ == "__main__":
    main()
