"""int8 conversion, parity proof and gate: `quantize` (build.py) turns a trained Keras model into the deployable
int8 model with its contract; convert.py, parity.py and latency.py are its steps; cli.py the subcommand.

`from emotion_edge.quantize import quantize, QuantizeOptions`: loaded lazily, so the CLI's import of cli.py does
not load TensorFlow.
"""

from emotion_edge.device import lazy_exports

_EXPORTS = {
    "QuantizeOptions": "build",
    "QuantizeResult": "build",
    "quantize": "build",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
