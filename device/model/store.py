"""The device's model folder: content-addressed models and an atomically flipped `current` link (health: health.py).

Layout (the folder is the parent of the config's [model] path; the link is its name):

    models/<sha256>.tflite   the model, named by its own hash
    models/<sha256>.json     its contract sidecar (found through the link's target, see EmotionClassifier)
    models/current -> <sha256>.tflite

`emotion-edge deploy` drives this over ssh with `emotion-edge device-model ...`,
so every step that touches the device runs here, in Python, and is tested
like any other code instead of living in shell strings. A model only ever
lands under its final name after its bytes were written, fsynced and hashed,
so an interrupted copy leaves nothing that `current` could point at.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from emotion_edge.device.contract import ContractError
from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.model.metadata import ModelMetadata, file_sha256, parse_metadata, sidecar_path

SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 16


class StoreError(EmotionEdgeError, RuntimeError):
    """A device-side step failed; the message says what and where."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_sha(sha: str) -> str:
    if not SHA256.match(sha):
        raise StoreError(f"{sha!r} is not a sha256 (64 lowercase hex digits)")
    return sha


def _copy_exact(stream: BinaryIO, out: BinaryIO, size: int, what: str, digest: Any | None = None) -> None:
    """Exactly `size` bytes from `stream` to `out`; a short stream is an interrupted copy."""
    left = size
    while left:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise StoreError(f"incomplete transfer: {what} ended after {size - left} of {size} bytes; nothing was installed")
        out.write(chunk)
        if digest is not None:
            digest.update(chunk)
        left -= len(chunk)


@dataclass(frozen=True)
class ModelStore:
    root: Path
    link_name: str = "current"

    @property
    def link(self) -> Path:
        return self.root / self.link_name

    def model_path(self, sha: str) -> Path:
        return self.root / f"{_check_sha(sha)}.tflite"

    def current_target(self) -> str | None:
        """The file name `current` points at, or None when there is no link yet."""
        try:
            return os.readlink(self.link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{self.link}: exists but is not a symlink ({exc.strerror}); move it away") from None

    def current_metrics(self) -> dict[str, Any]:
        """The metrics in the current model's sidecar (retrain compares against them); {} when unknown."""
        target = self.current_target()
        try:
            return dict(json.loads(sidecar_path(self.root / target).read_text()).get("metrics", {})) if target else {}
        except (OSError, ValueError, AttributeError):
            return {}

    def verify(self, sha: str) -> ModelMetadata:
        """Re-hash the stored model and check its sidecar names the same hash (no interpreter needed)."""
        path = self.model_path(sha)
        if not path.exists():
            raise StoreError(f"{path}: not on the device; copy it first (`emotion-edge deploy` does)")
        actual = file_sha256(path)
        if actual != sha:
            raise StoreError(f"{path}: content hashes to {actual}, not {sha}; the stored file is damaged")
        return _sidecar_for(sidecar_path(path), sha)

    def receive(self, stream: BinaryIO, sha: str, model_bytes: int, sidecar_bytes: int) -> Path:
        """Store a model sent as <sidecar bytes><model bytes>: temp files, fsync, hash, then the final names."""
        final = self.model_path(sha)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp_model = self.root / f".incoming-{sha}-{os.getpid()}.tflite"
        tmp_sidecar = tmp_model.with_suffix(".json")
        try:
            digest = hashlib.sha256()
            with open(tmp_sidecar, "wb") as out:
                _copy_exact(stream, out, sidecar_bytes, "the contract sidecar")
                out.flush()
                os.fsync(out.fileno())
            with open(tmp_model, "wb") as out:
                _copy_exact(stream, out, model_bytes, "the model", digest)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha:
                raise StoreError(f"the received model hashes to {digest.hexdigest()}, not {sha}; nothing was installed")
            _sidecar_for(tmp_sidecar, sha)
            for tmp in (tmp_model, tmp_sidecar):
                tmp.chmod(0o644)
            # Sidecar first: a model file under its final name always has its contract beside it.
            os.replace(tmp_sidecar, sidecar_path(final))
            os.replace(tmp_model, final)
            _fsync_dir(self.root)
        finally:
            for tmp in (tmp_model, tmp_sidecar):
                tmp.unlink(missing_ok=True)
        self.verify(sha)
        return final

    def adopt(self, model: Path) -> str:
        """Copy a local model and its sidecar in under their hash (install.sh seeds the shipped model this way)."""
        sidecar = sidecar_path(model)
        if not sidecar.exists():
            raise StoreError(f"{model}: its contract {sidecar.name} is missing")
        sha = file_sha256(model)
        with open(sidecar, "rb") as side, open(model, "rb") as body:
            self.receive(_Concat(side, body), sha, model.stat().st_size, sidecar.stat().st_size)
        return sha

    def _point_link_at(self, target: str) -> None:
        tmp = self.root / f".{self.link_name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)  # relative: the folder can be moved or mounted elsewhere
        os.replace(tmp, self.link)  # rename(2) over the old link: readers see the old or the new, never none
        _fsync_dir(self.root)

    def activate(self, sha: str) -> dict[str, Any]:
        """Verify the stored model, then flip `current` to it; returns the previous target for a rollback."""
        self.verify(sha)
        previous = self.current_target()
        self._point_link_at(self.model_path(sha).name)
        return {"previous": previous, "current": self.model_path(sha).name, "activated_at": time.time()}

    def restore(self, target: str | None) -> dict[str, Any]:
        """Point `current` back at `target` (a rollback); None removes the link, as before the first deploy."""
        if target is None:
            self.link.unlink(missing_ok=True)
            return {"current": None}
        if "/" in target or not (self.root / target).exists():
            raise StoreError(f"{self.root / target}: cannot roll back to it, it is not in {self.root}")
        self._point_link_at(target)
        return {"current": target}


def _sidecar_for(path: Path, sha: str) -> ModelMetadata:
    """The contract at `path`, which must parse and name the model `sha`."""
    try:
        metadata = parse_metadata(json.loads(path.read_text()), path)
    except FileNotFoundError:
        raise StoreError(f"{path}: the model's contract sidecar is missing") from None
    except (ValueError, ContractError) as exc:
        raise StoreError(f"{path}: unusable contract ({exc})") from None
    if metadata.sha256 != sha:
        raise StoreError(f"{path}: field 'sha256' is {metadata.sha256}, the model is {sha}")
    return metadata


class _Concat:
    """Two binary files read as one stream."""

    def __init__(self, *parts: BinaryIO):
        self._parts = list(parts)

    def read(self, n: int) -> bytes:
        while self._parts:
            chunk = self._parts[0].read(n)
            if chunk:
                return chunk
            self._parts.pop(0)
        return b""
