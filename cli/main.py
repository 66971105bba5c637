"""The `emotion-edge` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys

from emotion_edge import __version__
from emotion_edge.device.commands import (
    add_analyze,
    add_device_id,
    add_device_model,
    add_doctor,
    add_forget,
    add_listen,
    add_report,
    add_run,
    add_serve,
)
from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.logs import configure_logging
from emotion_edge.quantize.cli import add_quantize
from emotion_edge.systemd.cli import add_deploy, add_install, add_retrain
from emotion_edge.training.cli import add_ensemble, add_evaluate, add_teacher_outputs, add_train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotion-edge", description="Real-time facial-emotion sensor for the Raspberry Pi.")
    parser.add_argument("--version", action="version", version=f"emotion-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train(sub)
    add_evaluate(sub)
    add_teacher_outputs(sub)
    add_ensemble(sub)
    add_quantize(sub)
    add_analyze(sub)
    add_run(sub)
    add_device_model(sub)
    add_deploy(sub)
    add_retrain(sub)
    add_install(sub)
    add_serve(sub)
    add_listen(sub)
    add_doctor(sub)
    add_report(sub)
    add_forget(sub)
    add_device_id(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("DEBUG" if args.verbose else "INFO")
    try:
        return int(args.handler(args) or 0)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"tensorflow", "keras", "matplotlib", "sklearn"}:
            print(f"emotion-edge {args.command}: needs the workstation extra ({exc.name} is missing); "
                  "install it with: pip install 'emotion-edge[train]'", file=sys.stderr)
            return 2
        raise
    except EmotionEdgeError as exc:  # meant for the user: one line; anything else is a bug and keeps its traceback
        print(f"emotion-edge {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not about a path the user named: a bug, or a failure below us
            raise
        print(f"emotion-edge {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
