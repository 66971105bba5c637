"""Find a TFLite interpreter: LiteRT first, then the legacy tflite-runtime. Never TensorFlow.

The device must run without TensorFlow installed, so TensorFlow's own
`tf.lite.Interpreter` is deliberately not a fallback.
"""

from __future__ import annotations

from typing import Any


class RuntimeMissing(ImportError):
    pass


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
