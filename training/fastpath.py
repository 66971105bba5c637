"""The CPU training fast path: precision chosen from what the CPU can do, augmentation batched in tf.data.

Why: on a two-core workstation the per-image Keras augmentation layers cost about a third of a training step,
and bf16 doubles convolution throughput only where the CPU has native bf16 dot products (AVX-512 BF16 or AMX);
elsewhere it is emulated and slower than fp32. So precision is detected, never assumed, and augmentation runs
once per batch as a handful of vectorised ops, overlapped with the step by tf.data's prefetch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from emotion_edge.device.errors import UsageError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp32")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes bf16 dot products in hardware (Linux's flags; False where unreadable)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_precision(precision: str) -> str:
    """'auto' becomes 'bf16' on a CPU with native bf16, else 'fp32'."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return precision


def set_precision(precision: str) -> str:
    """Set Keras' global dtype policy for the layers built next; returns the precision in force."""
    import keras

    chosen = resolve_precision(precision)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if chosen == "bf16" else "float32")
    log.info("training precision: %s", chosen)
    return chosen


def augment_batch(images, seed_pair, strength: float = 1.0):
    """Random scale-and-shift crop with horizontal flip, brightness/contrast jitter and random erasing, on a
    whole batch of (n, h, w, 1) float faces in [0, 1] at once.

    One `crop_and_resize` does crop, zoom and flip (a box with x1 > x2 samples mirrored); erasing is a mask
    built from broadcast comparisons, so nothing loops over images in Python or in the graph.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    seeds = tf.random.experimental.stateless_split(seed_pair, 8)

    def uniform(i, lo, hi, shape=None):
        return tf.random.stateless_uniform(shape if shape is not None else [n], seeds[i], lo, hi)

    scale = uniform(0, 1.0 - 0.15 * strength, 1.0 + 0.05 * strength)  # side of the crop, as a share of the face
    cy = uniform(1, -0.1 * strength, 0.1 * strength) + 0.5
    cx = uniform(2, -0.1 * strength, 0.1 * strength) + 0.5
    y1, y2 = cy - scale / 2, cy + scale / 2
    x1, x2 = cx - scale / 2, cx + scale / 2
    flip = uniform(3, 0.0, 1.0) < 0.5
    x1, x2 = tf.where(flip, x2, x1), tf.where(flip, x1, x2)
    boxes = tf.stack([y1, x1, y2, x2], axis=1)
    out = tf.image.crop_and_resize(images, boxes, tf.range(n), (h, w), extrapolation_value=0.0)

    gain = uniform(4, 1.0 - 0.25 * strength, 1.0 + 0.25 * strength)[:, None, None, None]
    mean = tf.reduce_mean(out, axis=[1, 2, 3], keepdims=True)
    bias = uniform(5, -0.1 * strength, 0.1 * strength)[:, None, None, None]
    out = tf.clip_by_value((out - mean) * gain + mean + bias, 0.0, 1.0)

    # Random erasing (half the faces): a rectangle of 2-20% of the face set to noise, so no one region decides.
    box = tf.random.stateless_uniform([n, 5], seeds[6], 0.0, 1.0)
    area = 0.02 + 0.18 * box[:, 0]
    aspect = tf.exp((box[:, 1] - 0.5) * 1.2)
    eh, ew = tf.sqrt(area * aspect) * h, tf.sqrt(area / aspect) * w
    ey, ex = box[:, 2] * (h - eh), box[:, 3] * (w - ew)
    rows = tf.range(h, dtype=tf.float32)[None, :, None]
    cols = tf.range(w, dtype=tf.float32)[None, None, :]
    inside = ((rows >= ey[:, None, None]) & (rows < (ey + eh)[:, None, None])
              & (cols >= ex[:, None, None]) & (cols < (ex + ew)[:, None, None]) & (box[:, 4] < 0.5 * strength)[:, None, None])
    noise = tf.random.stateless_uniform(tf.shape(out), seeds[7], 0.0, 1.0)
    return tf.where(inside[..., None], noise, out)


def training_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: bool,
                     sample_weight: np.ndarray | None = None):
    """Shuffled, batched, augmented on the fly (one seed per batch, derived from `seed`), prefetched.

    `y` may be wide (a distillation target per face) and `sample_weight` per face: both travel with their face
    through the shuffle."""
    import tensorflow as tf

    arrays = (x, y) if sample_weight is None else (x, y, sample_weight)
    data = tf.data.Dataset.from_tensor_slices(arrays).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    if augment:
        counter = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).map(lambda v: tf.stack([v, v // 7 + 1]))
        data = tf.data.Dataset.zip((data, counter)).map(
            lambda batch, s: (augment_batch(batch[0], s), *batch[1:]), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)
