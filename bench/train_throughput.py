"""Training throughput (faces per second) of the CPU fast path against the previous path, in one run.

baseline: fp32, the seven per-image Keras augmentation layers inside the model (the path before the fast path)
fast:     the precision `auto` picks on this CPU, augmentation batched in tf.data (training/fastpath.py)

    python bench/train_throughput.py [--arch edge-vgg edge-vgg-m] [--steps 30] [--batch-size 128]

Random faces stand in for FER2013 (the cost of a step does not depend on the pixels). Each configuration runs
its warm-up steps first, then the timed steps; the ratio is fast over baseline for the same architecture.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def layer_augmenter(seed: int):
    """The per-image augmentation layers the project trained with before the fast path (the baseline)."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
        layers.RandomRotation(10 / 360, fill_mode="nearest", seed=seed + 2),
        layers.RandomZoom((-0.1, 0.1), fill_mode="nearest", seed=seed + 3),
        layers.RandomBrightness(0.15, value_range=(0.0, 1.0), seed=seed + 4),
        layers.RandomContrast(0.2, value_range=(0.0, 1.0), seed=seed + 5),
        layers.RandomErasing(factor=0.5, scale=(0.02, 0.15), value_range=(0.0, 1.0), seed=seed + 6),
    ], name="augment")


def measure(arch: str, fast: bool, steps: int, warmup: int, batch: int) -> float:
    import keras
    import tensorflow as tf

    from emotion_edge.device.contract import ModelContract
    from emotion_edge.training.fastpath import set_precision, training_dataset
    from emotion_edge.training.models import build_model

    contract = ModelContract()
    n = batch * (steps + warmup)
    x = np.random.default_rng(0).uniform(0, 1, (n, 48, 48, 1)).astype(np.float32)
    y = np.eye(7, dtype=np.float32)[np.random.default_rng(1).integers(0, 7, n)]
    keras.mixed_precision.set_global_policy("float32")
    if fast:
        set_precision("auto")
        model = build_model(arch, contract)
        data = training_dataset(x, y, batch, seed=1, augment=True)
    else:
        core = build_model(arch, contract)
        inputs = keras.Input(contract.input_shape)
        model = keras.Model(inputs, core(layer_augmenter(1)(inputs)))
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  loss="categorical_crossentropy", jit_compile=False)
    model.fit(data.take(warmup), verbose=0)
    started = time.perf_counter()
    model.fit(data.skip(warmup), verbose=0)
    keras.mixed_precision.set_global_policy("float32")
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=["edge-vgg", "edge-vgg-m", "edge-vgg-l"])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    from emotion_edge.device.contract import ModelContract
    from emotion_edge.training.fastpath import resolve_precision
    from emotion_edge.training.models import build_model, count_macs

    print(f"fast path precision on this CPU: {resolve_precision('auto')}; batch {args.batch_size}, "
          f"{args.steps} timed steps, {os.cpu_count()} CPUs")
    print("| arch | MACs | baseline img/s | fast img/s | ratio | epoch of 28,709 faces (fast) |")
    print("|---|---|---|---|---|---|")
    for arch in args.arch:
        macs = count_macs(build_model(arch, ModelContract()))
        base = measure(arch, False, args.steps, args.warmup, args.batch_size)
        fast = measure(arch, True, args.steps, args.warmup, args.batch_size)
        print(f"| {arch} | {macs / 1e6:.0f} M | {base:.0f} | {fast:.0f} | {fast / base:.2f}x | "
              f"{28709 / fast:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
