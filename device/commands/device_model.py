"""`emotion-edge device-model`: what `emotion-edge deploy` runs on the device over ssh, one JSON object per step."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from emotion_edge.device.contract import ContractError
from emotion_edge.device.daemon.service import read_status
from emotion_edge.device.model.health import wait_healthy
from emotion_edge.device.model.store import ModelStore, StoreError, _check_sha

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
        from emotion_edge.device.model.metadata import packaged_model_path

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
