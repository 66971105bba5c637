"""Per-face latency of int8 models through LiteRT, as ratios against a baseline measured in the same run.

The baseline is one face per invoke on one thread in a single pass (the model
alone); the other rows show what the contract's flip averaging (each face with
its mirror) costs, and what batching several faces into one invoke, and a
second thread, buy. Runs on the device's dependencies only (no TensorFlow).

    python bench/latency.py models/edge-vgg-int8.tflite [OTHER.tflite ...] [--faces 8] [--runs 300]

With several models, the first is today's (the shipped one) and the last column gives each setting's cost as a
ratio to the same setting of that first model, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.quantize.latency import ms_per_face


def single_pass_copy(path: Path, folder: Path) -> Path:
    """The same model file with a contract that says single pass, to measure the model alone."""
    copy = folder / path.name
    shutil.copy(path, copy)
    contract = json.loads(path.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps({**contract, "flip_average": False}))
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--faces", type=int, default=8, help="faces per batched invoke")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(args.faces, 48, 48), dtype=np.uint8)
    print(f"host: {platform.machine()} {platform.processor() or ''}, median of {args.runs} runs")
    print("| model | setting | ms per face | ratio to baseline | ratio to the first model |\n|---|---|---|---|---|")
    reference: list[float] = []
    for path in args.models:
        with tempfile.TemporaryDirectory() as folder:
            baseline = ms_per_face(EmotionClassifier(single_pass_copy(path, Path(folder)), threads=1), faces[:1], args.runs)
        one = EmotionClassifier(path, threads=1)
        two = EmotionClassifier(path, threads=2)
        mode = "flip-averaged" if one.contract.flip_average else "single pass"
        rows = [
            ("1 face/invoke, 1 thread, single pass (baseline)", baseline),
            (f"1 face/invoke, 1 thread, {mode}", ms_per_face(one, faces[:1], args.runs)),
            (f"{args.faces} faces/invoke, 1 thread, {mode}", ms_per_face(one, faces, args.runs)),
            (f"1 face/invoke, 2 threads, {mode}", ms_per_face(two, faces[:1], args.runs)),
            (f"{args.faces} faces/invoke, 2 threads, {mode}", ms_per_face(two, faces, args.runs)),
        ]
        reference = reference or [ms for _, ms in rows]
        for (setting, ms), first in zip(rows, reference):
            print(f"| {path.name} | {setting} | {ms:.3f} | {ms / baseline:.2f} | {ms / first:.2f} |")

if __name__ == "__main__":
    main()
