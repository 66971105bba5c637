"""The shipped int8 emotion model, its contract and model card (see README.md here)."""

DEFAULT_MODEL = "edge-vgg-int8.tflite"
