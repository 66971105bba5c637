"""`emotion-edge doctor`'s argparse; the checks live in `emotion_edge.device.doctor`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from emotion_edge.device.errors import UsageError

if TYPE_CHECKING:
    pass

from emotion_edge.device.doctor import DEFAULT_CONFIG, HostPaths, Level, doctor, summary


def add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the camera, model, broker, display, service, clock and CPU (on the Pi)",
                       description="Check everything the daemon needs with the config `run` reads, one line per "
                                   "check: OK, WARN or FAIL with what to do. Changes nothing. Exit status 1 if any "
                                   "check FAILs.")
    p.add_argument("--config", type=Path,
                   help=f"daemon TOML config, as for `run` (default: {DEFAULT_CONFIG} if present, else built-in defaults)")
    p.add_argument("--model", type=Path, help="override [model] path, as for `run`")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds each network or device check may take")
    p.add_argument("--json", action="store_true", help="print the checks as a JSON list instead of lines")
    p.set_defaults(handler=_run_doctor)


def _run_doctor(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    results = doctor(args.config, args.model, replace(HostPaths(), timeout_s=args.timeout))
    if args.json:
        print(json.dumps([{**asdict(r), "level": r.level.name} for r in results], indent=2))
    else:
        for result in results:
            print("\n".join(result.lines()))
        print(summary(results))
    sys.stdout.flush()
    return 1 if any(r.level is Level.FAIL for r in results) else 0
