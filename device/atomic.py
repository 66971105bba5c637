"""Atomic file replacement, the one way every part writes a file that others may read while it is written.

The new content goes to a temporary file beside the target, then `os.replace` (rename(2)) puts it in place, so
a reader sees the old file or the new one, never half of one, and a process killed mid-write leaves the old
file intact (and at most a stray temporary file).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replacing(path: Path, tmp: Path | None = None) -> Iterator[Path]:
    """Yields the temporary path to write (default `<name>.tmp` beside `path`); renames it over `path` on success.

    Pass `tmp` when the writer insists on a suffix (`np.savez` adds `.npz`, Keras wants `.keras`).
    """
    tmp = tmp if tmp is not None else path.with_name(path.name + ".tmp")
    yield tmp
    os.replace(tmp, path)


def write_atomic(path: Path, data: str | bytes, tmp: Path | None = None, mode: int | None = None,
                 durable: bool = False) -> None:
    """Replace `path` with `data` (text is written as UTF-8); `mode`, when given, is set before the rename.

    `durable`: also survive a power cut, not only a killed process: the content is synced before the rename and the
    directory after it (without, a power cut can leave the new name pointing at an empty file on some file systems).
    """
    with replacing(path, tmp) as target:
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data, encoding="utf-8")
        if mode is not None:
            target.chmod(mode)
        if durable:
            _fsync(target, os.O_RDONLY)
    if durable:
        _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
