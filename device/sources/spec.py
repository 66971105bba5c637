"""One parser for source specs: a command-line string (or [camera] source) to the source it names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal
from urllib.parse import urlsplit

from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.sources.frames import (
    IMAGE_SUFFIXES,
    PICAMERA_SPECS,
    VIDEO_SUFFIXES,
    FrameSource,
)
from emotion_edge.device.sources.images import ImageSource
from emotion_edge.device.sources.opencv import OpenCVSource, redact_uri, uri_kind
from emotion_edge.device.sources.picamera import (
    CameraPreview,
    PiCameraConfig,
    PiCameraSource,
    lores_size_for,
)


class SourceSpecError(EmotionEdgeError, ValueError):
    """A source spec names nothing a source can be opened from."""


@dataclass(frozen=True)
class SourceOptions:
    """Settings open_source() passes to whichever source the spec selects.

    width/height: requested webcam format, or the Pi camera's main stream size.
    fps: camera frame rate for cameras; playback rate for video files and images.
    loop: replay video files and image lists instead of ending.
    paced: replay video files and images like a camera, at fps or else their own rate (a video's, 15 fps for
        images); False replays them as fast as they are read (tests, benchmarks).
    lores_width: width of the Pi camera's gray stream (height follows main's aspect ratio).
    on_bad_file: what an image source does with an undecodable file.
    camera_factory: makes the Picamera2 object (tests inject a fake).
    camera_preview: the HDMI preview the Pi camera attaches to every camera it opens.
    """

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    loop: bool = False
    paced: bool = True
    lores_width: int = 640
    on_bad_file: Literal["raise", "skip"] = "raise"
    camera_factory: Callable[[], Any] | None = field(default=None, compare=False)
    camera_preview: CameraPreview | None = field(default=None, compare=False)


ACCEPTED_SPECS = (
    "'picamera2' (Raspberry Pi camera), a webcam index like '0' or a /dev/videoN path, "
    "an rtsp://, http:// or https:// URL, a video file ("
    + ", ".join(sorted(VIDEO_SUFFIXES))
    + "), an image file or a folder of images"
)


def open_source(spec: str, options: SourceOptions = SourceOptions()) -> FrameSource:
    """The source a command-line spec names (not yet opened). SourceSpecError (a ValueError) for anything unrecognised."""
    text = spec.strip()
    if text.lower() in PICAMERA_SPECS:
        return _picamera_source(options)
    kind = uri_kind(text)
    if kind == "webcam":
        # Device nodes are not checked for existence: a webcam may be plugged in later,
        # and ReopeningSource retries until it appears.
        return _opencv_source(text, options)
    if "://" in text:
        if kind == "stream":
            return _opencv_source(text, options)
        scheme = urlsplit(text).scheme.lower()
        raise SourceSpecError(f"unsupported URL scheme {scheme!r} in {redact_uri(text)!r}; accepted: {ACCEPTED_SPECS}")
    path = Path(text).expanduser()
    if path.is_dir():
        return _image_source(path, options)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            return _image_source([path], options)
        if suffix in VIDEO_SUFFIXES:
            return _opencv_source(str(path), options)
        raise SourceSpecError(f"{text!r}: unrecognised file type {suffix or '(no suffix)'!r}; accepted: {ACCEPTED_SPECS}")
    raise SourceSpecError(f"{text!r}: no such file, folder or device; accepted: {ACCEPTED_SPECS}")


def _opencv_source(uri: str, options: SourceOptions) -> OpenCVSource:
    # Unpaced replay of a file ignores fps too: as fast as the pipeline reads. For cameras fps is the capture rate.
    fps = options.fps if options.paced or uri_kind(uri) != "file" else None
    return OpenCVSource(uri, width=options.width, height=options.height, fps=fps, loop=options.loop,
                        paced=options.paced)


def _image_source(paths: Path | list[Path], options: SourceOptions) -> ImageSource:
    # Unpaced replay ignores fps too.
    return ImageSource(paths, loop=options.loop, fps=options.fps if options.paced else None, paced=options.paced,
                       on_bad_file=options.on_bad_file)


def _picamera_source(options: SourceOptions) -> PiCameraSource:
    if (options.width is None) != (options.height is None):
        raise SourceSpecError("the Pi camera needs both width and height, or neither")
    main = (options.width, options.height) if options.width and options.height else PiCameraConfig.main_size
    config = PiCameraConfig(main_size=main, lores_size=lores_size_for(main, options.lores_width), fps=options.fps)
    return PiCameraSource(config, camera_factory=options.camera_factory, preview=options.camera_preview)
