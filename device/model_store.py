"""The device's model folder: content-addressed models, an atomically flipped `current` link, and health.

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

import argparse
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

from emotion_edge.device.contract import ContractError
from emotion_edge.device.model_metadata import ModelMetadata, file_sha256, parse_metadata, sidecar_path
from emotion_edge.device.service import read_status

SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 16


class StoreError(RuntimeError):
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

    def current_sha(self) -> str | None:
        target = self.current_target()
        return Path(target).stem if target and SHA256.match(Path(target).stem) else None

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # the service user's process, seen from the deploy user
    return True


def health_verdict(status: dict[str, Any] | None, sha: str, since: float, now: float,
                   pid_alive: Callable[[int], bool] = _pid_alive) -> tuple[bool | None, str]:
    """(True, why) healthy, (False, why) failed for good, (None, why) not yet: the daemon runs `sha` and
    processed a frame after `since` (wall clock of the activation)."""
    if status is None:
        return None, "no status file yet: is the service running?"
    pid = int(status.get("pid", 0))
    if not pid or not pid_alive(pid):
        return None, f"the daemon that wrote the status (pid {pid}) is not running"
    error = status.get("reload_error") or {}
    if Path(str(error.get("target", ""))).name == f"{sha}.tflite" and float(error.get("at", 0)) >= since:
        return False, f"the daemon refused the model: {error.get('reason')}"
    running = status.get("model_sha256", "")
    last_frame = status.get("last_frame_at")
    if running != sha:
        return None, f"the daemon still runs model {running[:12]}"
    # A frame after the load, not just after the flip: one processed between the flip and the reload used the old model.
    if last_frame is None or float(last_frame) <= max(since, float(status.get("model_loaded_at", 0))):
        age = "no frame yet" if last_frame is None else f"last frame {now - float(last_frame):.1f} s ago"
        return None, f"the daemon loaded the model but processed no frame with it ({age})"
    return True, f"pid {pid} runs {sha[:12]}, {status.get('frames')} frames, last {now - float(last_frame):.1f} s ago"


def wait_healthy(status_file: Path, sha: str, since: float, timeout: float, poll: float = 0.2) -> str:
    """Poll the daemon's status file until `health_verdict` decides; raises StoreError with the reason."""
    deadline = time.monotonic() + timeout
    while True:
        ok, why = health_verdict(read_status(status_file), sha, since, time.time())
        if ok:
            return why
        if ok is False:
            raise StoreError(why)
        if time.monotonic() >= deadline:
            raise StoreError(f"not healthy after {timeout:g} s: {why} (status file {status_file})")
        time.sleep(poll)


# --- `emotion-edge device-model`: what `emotion-edge deploy` runs on the device over ssh ---------------------


def add_device_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "device-model", help="the device's model folder: receive, activate, roll back, health (run by deploy)",
        description="Device-side steps of `emotion-edge deploy`. Every command prints one JSON object; on "
                    "failure {\"error\": REASON} and exit status 1.")
    p.add_argument("--config", type=Path, default=Path("/etc/emotion-edge/config.toml"),
                   help="daemon config: [model] path is the `current` link, [service] status_file the health source")
    cmds = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = cmds.add_parser("receive", help="store a model streamed on stdin as <sidecar bytes><model bytes>")
    r.add_argument("sha256")
    r.add_argument("--model-bytes", type=int, required=True)
    r.add_argument("--sidecar-bytes", type=int, required=True)
    cmds.add_parser("verify", help="re-hash a stored model and check its sidecar").add_argument("sha256")
    cmds.add_parser("activate", help="flip `current` to a stored model").add_argument("sha256")
    b = cmds.add_parser("rollback", help="point `current` back at a previous target")
    b.add_argument("--to", help="file name `current` pointed at before (omit to remove the link)")
    h = cmds.add_parser("health", help="wait until the running daemon reports this model and processes frames")
    h.add_argument("sha256")
    h.add_argument("--since", type=float, required=True, help="activation time (device wall clock, from activate)")
    h.add_argument("--timeout", type=float, default=30.0)
    a = cmds.add_parser("adopt", help="copy a local model (default: the shipped one) into the folder")
    a.add_argument("model", nargs="?", type=Path)
    a.add_argument("--activate", action="store_true", help="also make it `current`")
    a.add_argument("--if-no-current", action="store_true", help="do nothing when a `current` link exists")
    cmds.add_parser("status", help="`current` and the daemon's status file")
    p.set_defaults(handler=_run_device_model)


def _store_and_status(config_path: Path) -> tuple[ModelStore, Path]:
    from emotion_edge.device.config import load_config

    config = load_config(config_path)
    return ModelStore(config.model.path.parent, config.model.path.name), config.service.status_file


def _act(args: argparse.Namespace, store: ModelStore, status_file: Path) -> dict[str, Any]:
    if args.action == "receive":
        path = store.receive(sys.stdin.buffer, _check_sha(args.sha256), args.model_bytes, args.sidecar_bytes)
        return {"stored": str(path)}
    if args.action == "verify":
        store.verify(args.sha256)
        return {"verified": args.sha256}
    if args.action == "activate":
        return store.activate(args.sha256)
    if args.action == "rollback":
        return store.restore(args.to)
    if args.action == "health":
        return {"healthy": wait_healthy(status_file, _check_sha(args.sha256), args.since, args.timeout)}
    if args.action == "adopt":
        if args.if_no_current and store.current_target() is not None:
            return {"current": store.current_target(), "adopted": None}
        from emotion_edge.device.model_metadata import packaged_model_path

        sha = store.adopt(args.model or packaged_model_path())
        return store.activate(sha) if args.activate else {"adopted": sha}
    status = read_status(status_file)
    return {"current": store.current_target(), "root": str(store.root), "status": status,
            "int8_accuracy": store.current_metrics().get("int8_accuracy")}


def _run_device_model(args: argparse.Namespace) -> int:
    try:
        store, status_file = _store_and_status(args.config)
        result = _act(args, store, status_file)
    except (StoreError, ContractError, ValueError, OSError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result, default=str))
    return 0

