"""The emotion model: LiteRT lookup and tensor (de)quantisation, the sidecar contract, `EmotionClassifier`, the
device's model store, the deploy's health verdict and hot reload.
"""

from emotion_edge.device import lazy_exports

_EXPORTS = {
    "EmotionClassifier": "classifier",
    "ModelError": "classifier",
    "tensor_quant": "classifier",
    "health_verdict": "health",
    "wait_healthy": "health",
    "RuntimeMissing": "litert",
    "dequantize": "litert",
    "interpreter_class": "litert",
    "quantize": "litert",
    "read_tflite": "litert",
    "ModelMetadata": "metadata",
    "TensorQuant": "metadata",
    "file_sha256": "metadata",
    "load_metadata": "metadata",
    "packaged_model_path": "metadata",
    "parse_metadata": "metadata",
    "save_metadata": "metadata",
    "sidecar_path": "metadata",
    "ReloadRefused": "reload",
    "load_replacement": "reload",
    "ModelStore": "store",
    "StoreError": "store",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
