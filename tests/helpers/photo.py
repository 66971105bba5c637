"""The tests' one real face: scikit-image's bundled `astronaut` photo (512x512, one smiling face), built here only.

`astronaut_bgr()` is the photo as a camera frame (BGR, contiguous, a fresh copy each call); `ASTRONAUT_FACE` is
her face box, marked by eye (forehead to chin, cheek to cheek), which every detector agrees with (IoU > 0.8,
tests/test_detection.py). Nothing is downloaded: a scikit-image wheel without the file skips the test.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from helpers.peers import require_module

ASTRONAUT_FACE = (176, 70, 98, 98)  # x, y, w, h in the 512x512 photo


@functools.lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    skimage_data = require_module("skimage.data")  # scikit-image (test extra) provides the face photo
    shipped = Path(skimage_data.__file__).parent / "astronaut.png"
    if not shipped.is_file():
        pytest.skip(f"{shipped} is not in this scikit-image wheel; the tests never download data")
    photo = np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1])  # RGB -> BGR, as a camera frame
    photo.flags.writeable = False
    return photo


def astronaut_bgr() -> np.ndarray:
    return _astronaut().copy()


def astronaut_head() -> np.ndarray:
    """Her head and shoulders (300x300 from the top), the crop the face videos paste."""
    return np.ascontiguousarray(_astronaut()[0:300, 80:380])


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of zeros: a few hundred kilobytes on disk that would decode to width x height pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def frame_folder(folder: Path, count: int = 3) -> Path:
    """`count` plain 160x120 frames of different grays, an image-folder source for tests that need no face."""
    import cv2

    folder.mkdir()
    for i in range(count):
        assert cv2.imwrite(str(folder / f"{i}.png"), np.full((120, 160, 3), 60 * i, np.uint8))
    return folder
