"""Find a TFLite interpreter: LiteRT first, then the legacy tflite-runtime. Never TensorFlow.

The device must run without TensorFlow installed, so TensorFlow's own
`tf.lite.Interpreter` is deliberately not a fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emotion_edge.device.errors import EmotionEdgeError

# Every .tflite file is a FlatBuffer whose file identifier (bytes 4-8) is "TFL3".
TFLITE_IDENTIFIER = b"TFL3"


class RuntimeMissing(EmotionEdgeError, ImportError):
    """No TFLite interpreter is installed."""


def interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        raise RuntimeMissing(
            "no TFLite interpreter: install 'ai-edge-litert' (or 'tflite-runtime' where NumPy < 2)"
        ) from None


def read_tflite(path: Path, error: type[Exception] = ValueError) -> bytes:
    """The model file's bytes, or `error` naming the file when it is missing, unreadable or not TFLite.

    Checked here because a foreign file handed to the interpreter gives a
    message from deep inside it that names neither the file nor the fix.
    """
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such model file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read model file ({exc.strerror})") from None
    if len(blob) < 16 or blob[4:8] != TFLITE_IDENTIFIER:
        raise error(f"{path}: not a TFLite model (no 'TFL3' FlatBuffer identifier); is it the right file?")
    return blob


def quantize(x: np.ndarray, dtype: Any, scale: float, zero_point: int) -> np.ndarray:
    """Float values as a tensor of `dtype` with this (scale, zero_point); a float32 tensor takes them as they are."""
    if dtype == np.float32:
        return x
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """A tensor's values as float32: integers mapped back through (scale, zero_point), float32 as it is."""
    if q.dtype == np.float32:
        return q
    return (q.astype(np.float32) - zero_point) * scale
