"""Image files and folders as a frame source, in natural order, optionally looped and paced."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Literal, Sequence

import cv2
import numpy as np

from emotion_edge.device.sources.frames import (
    IMAGE_SUFFIXES,
    Clock,
    Frame,
    Sleep,
    SourceBase,
    SourceError,
    SourceExhausted,
    _Pacer,
)

log = logging.getLogger(__name__)


def _natural_key(path: Path) -> list[int | str]:
    # frame2.png before frame10.png, as a person numbering frames expects.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, hidden files skipped), in natural order."""
    files = [
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(files, key=_natural_key)


def load_image(path: Path) -> np.ndarray:
    """A BGR uint8 image from disk; SourceError naming the file when it is missing or not an image."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read image file ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"{path}: not a decodable image file")
    return image


IMAGE_FPS = 15.0  # a paced image folder without an fps: a camera's usual rate


class ImageSource(SourceBase):
    """Still images as a frame sequence: a folder (image files in natural order) or a list of files.

    A folder contributes only files with an image suffix; files given explicitly are all used.
    on_bad_file: "raise" stops with a SourceError naming the file; "skip" logs a warning once
    and moves on. fps paces delivery; without fps, `paced` (what open_source() and the daemon's
    `[camera] paced` default to) paces it at IMAGE_FPS (stills have no frame rate of their own: a camera's
    usual one); neither: as fast as read() is called.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        loop: bool = False,
        fps: float | None = None,
        paced: bool = False,
        on_bad_file: Literal["raise", "skip"] = "raise",
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if on_bad_file not in ("raise", "skip"):
            raise ValueError(f"on_bad_file must be 'raise' or 'skip', got {on_bad_file!r}")
        if isinstance(paths, (str, Path)):
            self._folder: Path | None = Path(paths) if Path(paths).is_dir() else None
            self._given = [] if self._folder else [Path(paths)]
            self.name = str(paths)
        else:
            self._folder = None
            self._given = [Path(p) for p in paths]
            self.name = f"{len(self._given)} image(s)" if len(self._given) != 1 else str(self._given[0])
        self.loop = loop
        self.on_bad_file = on_bad_file
        self._clock = clock
        self._pacer = _Pacer(fps or (IMAGE_FPS if paced else None), clock, sleep)
        self._files: list[Path] | None = None
        self._bad: set[Path] = set()
        self._position = 0
        self._index = 0

    @property
    def files(self) -> list[Path]:
        """The files this source will show (resolved at open())."""
        return list(self._files or [])

    @property
    def bad_files(self) -> list[Path]:
        """The files skipped as unreadable so far (on_bad_file="skip")."""
        return sorted(self._bad)

    def open(self) -> None:
        files = list_images(self._folder) if self._folder is not None else list(self._given)
        if not files:
            where = f"folder {self._folder}" if self._folder is not None else "the given list"
            raise SourceError(f"no image files in {where} (accepted: {', '.join(sorted(IMAGE_SUFFIXES))})")
        self._files = files
        self._position = 0
        self._index = 0
        self._pacer.reset()

    def read(self, timeout: float) -> Frame | None:
        if self._files is None:
            raise SourceError(f"{self.name}: read() before open()")
        if not self._pacer.wait(timeout):
            return None
        image = self._next_image()
        self._pacer.mark()
        return self._emit(image, self._clock(), self._pacer.waited_s)

    def _next_image(self) -> np.ndarray:
        assert self._files is not None
        # Bounded so a looping list of only bad files raises instead of spinning forever.
        for _ in range(2 * len(self._files) + 1):
            if self._position >= len(self._files):
                if not self.loop:
                    raise SourceExhausted(f"{self.name}: no more images after {self._index}")
                self._position = 0
            path = self._files[self._position]
            self._position += 1
            if path in self._bad:
                continue
            try:
                return load_image(path)
            except SourceError as exc:
                if self.on_bad_file == "raise":
                    raise
                self._bad.add(path)
                log.warning("skipping %s; the other images go on (counted in stats.source.bad_files)", exc,
                            extra={"source": self.name, "event": "bad_image", "file": str(path)})
        raise SourceError(f"{self.name}: none of the {len(self._files)} file(s) is a readable image")

    def close(self) -> None:
        self._files = None
