"""Small synthetic FER2013 stand-ins, so the tests never need the real data set.

Each emotion draws a bright square at its own place on a noisy background:
trivially learnable, so a tiny model trained for a few seconds is confident
enough for parity checks to mean something.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from emotion_edge.device.contract import EMOTIONS

USAGES = {"Training": 24, "PublicTest": 6, "PrivateTest": 6}  # faces per emotion per split


def face(label: int, rng: np.random.Generator) -> np.ndarray:
    image = rng.integers(0, 60, size=(48, 48)).astype(np.uint8)
    row, col = divmod(label, 3)
    y, x = 4 + row * 14 + int(rng.integers(0, 3)), 4 + col * 14 + int(rng.integers(0, 3))
    image[y : y + 10, x : x + 10] = 200 + rng.integers(0, 55, size=(10, 10)).astype(np.uint8)
    return image


def records(seed: int = 0, per_split: dict[str, int] | None = None) -> list[tuple[int, np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for usage, per_class in (per_split or USAGES).items():
        for _ in range(per_class):
            for label in range(len(EMOTIONS)):
                out.append((label, face(label, rng), usage))
    return out


def csv_text(rows: list[tuple[int, np.ndarray, str]]) -> str:
    lines = ["emotion,pixels,Usage"]
    lines += [f"{label},{' '.join(map(str, image.ravel()))},{usage}" for label, image, usage in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[tuple[int, np.ndarray, str]] | None = None, gz: bool = False) -> Path:
    text = csv_text(rows if rows is not None else records())
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def write_folders(root: Path, rows: list[tuple[int, np.ndarray, str]] | None = None) -> Path:
    import cv2

    folder = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    for i, (label, image, usage) in enumerate(rows if rows is not None else records()):
        target = root / folder[usage] / EMOTIONS[label]
        target.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target / f"im{i}.png"), image)
    return root
