"""Keras model -> full-integer int8 TFLite, calibrated on a stratified sample of the Training split."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from emotion_edge.device.contract import normalize
from emotion_edge.training.splits import Split

log = logging.getLogger(__name__)


def representative_sample(train: Split, size: int, seed: int) -> np.ndarray:
    """`size` uint8 faces drawn stratified by emotion, so calibration sees the rare classes' ranges too."""
    from sklearn.model_selection import train_test_split

    if size >= len(train):
        return train.images
    index = np.arange(len(train))
    _, chosen = train_test_split(index, test_size=size, random_state=seed, stratify=train.labels)
    return train.images[np.sort(chosen)]


def _representative_dataset(faces: np.ndarray):
    def generate() -> Iterator[list[np.ndarray]]:
        for face in normalize(faces):
            yield [face[np.newaxis]]

    return generate


def _converter_from_keras(model, workdir: Path):
    """Keras 3 models go through a SavedModel export: the direct converter path fails on them."""
    import tensorflow as tf

    saved = workdir / "saved_model"
    if hasattr(model, "export"):
        model.export(str(saved), format="tf_saved_model", verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(str(saved))
    return tf.lite.TFLiteConverter.from_keras_model(model)


def convert_int8(model, calibration_faces: np.ndarray, io_dtype: str = "int8") -> bytes:
    """Full-integer conversion: int8 (or uint8) input/output tensors, per-channel int8 weights."""
    import tensorflow as tf

    if io_dtype not in {"int8", "uint8"}:
        raise ValueError(f"input/output type must be int8 or uint8, got {io_dtype!r}")
    with tempfile.TemporaryDirectory(prefix="emotion-edge-quantize-") as workdir:
        converter = _converter_from_keras(model, Path(workdir))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative_dataset(calibration_faces)
        # Fail the conversion rather than silently leave float ops in the graph.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_dtype)
        converter.inference_output_type = getattr(tf, io_dtype)
        return converter.convert()
