"""MediaPipe's BlazeFace face-detection models, shipped as package data (see README.md and LICENSE here).

Data only: `emotion_edge.device.detection` finds the files with `models_dir()` below, so a plain
`pip install emotion-edge` brings the default detector without any other install step.
"""

from __future__ import annotations

from pathlib import Path


def models_dir() -> Path:
    """The folder holding the packaged BlazeFace .tflite files (this package's own folder)."""
    return Path(__file__).resolve().parent
