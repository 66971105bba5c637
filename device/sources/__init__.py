"""Frame sources: Pi camera, USB webcams, RTSP/HTTP streams, video files and image folders.

Every source satisfies one small interface, `FrameSource`: ``open()``, ``read(timeout)``,
``close()`` and a ``name``; all sources here are context managers (``with source:`` opens
and closes). ``read`` returns a `Frame`, or None when no frame arrived within ``timeout``
seconds, and raises `SourceError` when the source has failed (`SourceExhausted` when a
file or image list has simply ended). `ReopeningSource` wraps any source and turns
transient failures and stalls into reopen-with-backoff, so the main loop never dies
because a cable wobbled.

Use `open_source(spec)` to turn a command-line string into a source.
"""

from emotion_edge.device.sources.frames import (
    IMAGE_SUFFIXES,
    PICAMERA_SPECS,
    STREAM_SCHEMES,
    VIDEO_SUFFIXES,
    BufferPool,
    Frame,
    FrameSource,
    SourceBase,
    SourceError,
    SourceExhausted,
    bgr_frame,
)
from emotion_edge.device.sources.images import ImageSource, list_images, load_image
from emotion_edge.device.sources.opencv import OpenCVSource, redact_uri
from emotion_edge.device.sources.picamera import (
    CameraPreview,
    PiCameraConfig,
    PiCameraSource,
    lores_size_for,
)
from emotion_edge.device.sources.reopening import Backoff, ReopeningSource, SourceStats
from emotion_edge.device.sources.spec import ACCEPTED_SPECS, SourceOptions, open_source

__all__ = [
    "ACCEPTED_SPECS", "IMAGE_SUFFIXES", "PICAMERA_SPECS", "STREAM_SCHEMES", "VIDEO_SUFFIXES", "Backoff", "BufferPool",
    "CameraPreview",
    "Frame", "FrameSource", "ImageSource", "OpenCVSource", "PiCameraConfig", "PiCameraSource", "ReopeningSource",
    "SourceBase", "SourceError", "SourceExhausted", "SourceOptions", "SourceStats", "bgr_frame", "list_images",
    "load_image", "lores_size_for", "open_source", "redact_uri",
]
