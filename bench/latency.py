"""Per-face latency of int8 models through LiteRT, as ratios against a baseline measured in the same run.

The baseline is one face per invoke on one thread (what a single-face frame
costs); the other rows show what batching several faces into one invoke, and
a second thread, buy. Runs on the device's dependencies only (no TensorFlow).

    python bench/latency.py models/edge-vgg-int8.tflite [--faces 8] [--runs 300]
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from emotion_edge.device.classifier import EmotionClassifier, ms_per_face


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--faces", type=int, default=8, help="faces per batched invoke")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(args.faces, 48, 48), dtype=np.uint8)
    print(f"host: {platform.machine()} {platform.processor() or ''}, median of {args.runs} runs")
    print("| model | setting | ms per face | ratio to baseline |\n|---|---|---|---|")
    for path in args.models:
        one = EmotionClassifier(path, threads=1)
        two = EmotionClassifier(path, threads=2)
        baseline = ms_per_face(one, faces[:1], args.runs)
        rows = [
            ("1 face/invoke, 1 thread (baseline)", baseline),
            (f"{args.faces} faces/invoke, 1 thread", ms_per_face(one, faces, args.runs)),
            ("1 face/invoke, 2 threads", ms_per_face(two, faces[:1], args.runs)),
            (f"{args.faces} faces/invoke, 2 threads", ms_per_face(two, faces, args.runs)),
        ]
        for setting, ms in rows:
            print(f"| {path.name} | {setting} | {ms:.3f} | {ms / baseline:.2f} |")


if __name__ == "__main__":
    main()
