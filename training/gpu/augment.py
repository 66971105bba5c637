"""Batched face augmentation in numpy: the GPU campaign's (no TensorFlow there) and teacher views'.

The same recipe as `training.fastpath.augment_batch` (scale-and-shift crop with horizontal flip,
brightness/contrast jitter, random erasing), but the crop samples nearest pixels: one fancy-indexing gather per
batch does crop, zoom and flip, so a single CPU thread augments tens of thousands of faces a second.
"""

from __future__ import annotations

import numpy as np


def augment_faces(images: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Augment (n, h, w) or (n, h, w, 1) faces: uint8 in 0-255 or float in [0, 1]; returns float32 in [0, 1]
    with the input's shape. `strength` 0 leaves only the random flip."""
    faces = np.asarray(images)
    shape = faces.shape
    if faces.ndim == 4:
        faces = faces[..., 0]
    if faces.ndim != 3:
        raise ValueError(f"augment_faces wants (n, h, w) or (n, h, w, 1) faces, got shape {shape}")
    x = faces.astype(np.float32) / 255.0 if faces.dtype == np.uint8 else faces.astype(np.float32)
    n, h, w = x.shape

    scale = rng.uniform(1.0 - 0.15 * strength, 1.0 + 0.05 * strength, n)  # crop side as a share of the face
    cy = 0.5 + rng.uniform(-0.1 * strength, 0.1 * strength, n) if strength else np.full(n, 0.5)
    cx = 0.5 + rng.uniform(-0.1 * strength, 0.1 * strength, n) if strength else np.full(n, 0.5)
    flip = rng.uniform(0.0, 1.0, n) < 0.5
    unit_y = (np.arange(h) + 0.5) / h - 0.5
    unit_x = (np.arange(w) + 0.5) / w - 0.5
    unit_x = np.where(flip[:, None], -unit_x[None, :], unit_x[None, :])
    ys = np.floor((cy[:, None] + scale[:, None] * unit_y[None, :]) * h).astype(np.int64)
    xs = np.floor((cx[:, None] + scale[:, None] * unit_x) * w).astype(np.int64)
    inside = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]
    out = x[np.arange(n)[:, None, None], np.clip(ys, 0, h - 1)[:, :, None], np.clip(xs, 0, w - 1)[:, None, :]]
    out = np.where(inside, out, 0.0).astype(np.float32)

    if strength:
        gain = rng.uniform(1.0 - 0.25 * strength, 1.0 + 0.25 * strength, n)[:, None, None]
        bias = rng.uniform(-0.1 * strength, 0.1 * strength, n)[:, None, None]
        mean = out.mean(axis=(1, 2), keepdims=True)
        out = np.clip((out - mean) * gain + mean + bias, 0.0, 1.0)

        # Random erasing (half the faces): a rectangle of 2-20% of the face set to noise.
        box = rng.uniform(0.0, 1.0, (n, 5))
        area = 0.02 + 0.18 * box[:, 0]
        aspect = np.exp((box[:, 1] - 0.5) * 1.2)
        eh, ew = np.sqrt(area * aspect) * h, np.sqrt(area / aspect) * w
        ey, ex = box[:, 2] * (h - eh), box[:, 3] * (w - ew)
        rows = np.arange(h, dtype=np.float64)[None, :, None]
        cols = np.arange(w, dtype=np.float64)[None, None, :]
        erase = ((rows >= ey[:, None, None]) & (rows < (ey + eh)[:, None, None])
                 & (cols >= ex[:, None, None]) & (cols < (ex + ew)[:, None, None])
                 & (box[:, 4] < 0.5 * strength)[:, None, None])
        out = np.where(erase, rng.random(out.shape, dtype=np.float32), out)
    return out.astype(np.float32).reshape(shape)
