"""Golden images: compare a rendered picture with the committed PNG; UPDATE_GOLDEN=1 rewrites them.

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_overlay.py tests/test_displays.py

The README shows the same pictures (docs/displays/), written by the same run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

GOLDEN = Path(__file__).parent.parent / "golden"
DOCS = Path(__file__).parent.parent.parent / "docs" / "displays"
REGENERATE = "regenerate with: UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_overlay.py tests/test_displays.py"


def updating() -> bool:
    return os.environ.get("UPDATE_GOLDEN") == "1"


def check_golden(name: str, image: Image.Image, max_mismatch: float = 0.0, tolerance: int = 0) -> None:
    """`image` must match golden/`name` pixel for pixel, except at most `max_mismatch` of the golden's drawn
    (non-zero) pixels may differ by more than `tolerance` (anti-aliased text moves between OpenCV releases)."""
    path = GOLDEN / name
    if updating():
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    assert path.exists(), f"{path} is missing; {REGENERATE}"
    with Image.open(path) as stored:
        golden = stored.copy()
    assert golden.mode == image.mode and golden.size == image.size, (
        f"{name}: rendered {image.mode} {image.size}, golden {golden.mode} {golden.size}; {REGENERATE}")
    rendered, expected = np.asarray(image, np.int16), np.asarray(golden, np.int16)
    differs = np.abs(rendered - expected)
    differs = differs.max(axis=-1) if differs.ndim == 3 else differs
    drawn = expected.any(axis=-1) if expected.ndim == 3 else expected != 0
    bad = int((differs > tolerance).sum())
    allowed = int(max_mismatch * max(1, int(drawn.sum())))
    assert bad <= allowed, f"{name}: {bad} pixels differ from the golden image (allowed {allowed}); {REGENERATE}"


def save_doc(name: str, image: Image.Image) -> None:
    """A copy for the README, written only while regenerating the goldens."""
    if updating():
        DOCS.mkdir(parents=True, exist_ok=True)
        image.save(DOCS / name)
