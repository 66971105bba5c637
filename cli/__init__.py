"""emotion-edge: a real-time facial-emotion sensor for the Raspberry Pi.

This package root holds only the `emotion-edge` command; the work lives in
emotion_edge.device (the Pi), emotion_edge.training and emotion_edge.quantize
(the workstation).
"""

from emotion_edge.device import __version__

__all__ = ["__version__"]
