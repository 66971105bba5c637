"""Images in and out, one home for the CLI (`analyze`) and the web server: decode, inspect (format and size from
the header, before a pixel is decoded), the policy an image must meet (formats, the pixel limit), encode, and
face thumbnails.

Errors are `ImageError`, with a `code` that is stable for programs (the HTTP API maps it to a status,
web/errors.py) and a message for people.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from emotion_edge.device.contract import square_box
from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.geometry import Box


class ImageError(EmotionEdgeError, ValueError):
    """An image that cannot be taken; `code` is stable for programs, the message is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# What the HTTP API accepts, by Pillow's name for the format it sniffed from the bytes.
WEB_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP"})


@dataclass(frozen=True)
class ImagePolicy:
    """What an image must be before a pixel of it is decoded.

    The default (the CLI's, on the user's own files) takes anything OpenCV
    decodes. The HTTP API takes uploads from strangers: it sniffs the format
    from the bytes (never trusting a declared type or file name) and reads the
    pixel count from the header, so a decompression bomb is refused before it
    can take the Pi's memory.
    """

    formats: frozenset[str] | None = None  # None: any format OpenCV decodes
    max_pixels: int | None = None  # None: no limit
    raise_limit: str = "raise [http] max_pixels in the config"  # how the user of this policy raises max_pixels

    @property
    def inspects(self) -> bool:
        return self.formats is not None or self.max_pixels is not None


@dataclass(frozen=True)
class ImageHeader:
    format: str  # Pillow's format name: JPEG, PNG, WEBP, BMP, GIF, ...
    width: int
    height: int


def inspect_image(data: bytes, name: str, policy: ImagePolicy) -> ImageHeader | None:
    """The format and size from the image's header (Pillow opens lazily: nothing is decoded), checked against the policy."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            header = ImageHeader(image.format or "unknown", *image.size)
    except Image.DecompressionBombError as exc:  # Pillow's own ceiling, far above any sane limit
        limit = f", over the limit of {policy.max_pixels:,}" if policy.max_pixels is not None else ""
        raise ImageError("too_many_pixels", f"{name}: {exc}{limit}; scale the image down") from None
    except (OSError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        if policy.formats is None and data:
            return None  # a format only OpenCV knows (the CLI takes any): no header to check
        what = "an empty file" if not data else "not an image"
        raise ImageError("not_an_image", f"{name}: {what} (JPEG, PNG, WebP or BMP expected)") from exc
    if policy.formats is not None and header.format not in policy.formats:
        raise ImageError("unsupported_format", f"{name}: {header.format} images are not supported; "
                                                 f"send {', '.join(sorted(policy.formats))}")
    pixels = header.width * header.height
    if policy.max_pixels is not None and pixels > policy.max_pixels:
        raise ImageError("too_many_pixels", f"{name}: {header.width}x{header.height} is {pixels:,} pixels, over "
                                              f"the limit of {policy.max_pixels:,}; scale the image down, or "
                                              f"{policy.raise_limit}")
    return header


def decode_image(data: bytes, name: str, policy: ImagePolicy = ImagePolicy()) -> np.ndarray:
    header = inspect_image(data, name, policy) if policy.inspects else None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None and header is not None:
        raise ImageError("corrupt_image", f"{name}: a {header.format} file that does not decode (truncated or damaged)")
    if image is None:
        raise ImageError("not_an_image", f"{name}: not a decodable image (JPEG, PNG, WebP, BMP, ...)")
    return image


def encode_image(image: np.ndarray, suffix: str, jpeg_quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(suffix, image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix == ".jpg" else [])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as {suffix}")
    return buffer.tobytes()


def face_thumbnail(image: np.ndarray, box: Box, margin: float, size: int = 112) -> np.ndarray:
    """The face's square crop in colour, as the model saw it (same margin), for people to look at."""
    x0, y0, side = square_box(box.as_xywh(), margin)
    pad = side
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = padded[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
