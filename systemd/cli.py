"""`emotion-edge deploy`, `retrain` and `install`: argument parsing; the work is in deploy.py, retrain.py, install.sh."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from emotion_edge.device.errors import UsageError
from emotion_edge.systemd.inventory import DEFAULT_COMMAND, DEFAULT_CONFIG, DEFAULT_RELOAD, Host

log = logging.getLogger(__name__)


def _add_target_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """The devices to deploy to and how to reach them; `retrain` checks them itself (not needed with --no-deploy)."""
    where = p.add_mutually_exclusive_group(required=required)
    where.add_argument("--host", action="append", metavar="[USER@]HOST[:PORT]",
                       help="a device; repeat for several (the first is the canary)")
    where.add_argument("--inventory", type=Path, metavar="FILE", help="TOML inventory of devices (see systemd/README.md)")
    p.add_argument("--identity", type=Path, help="ssh private key (--host only)")
    p.add_argument("--remote-command", default=DEFAULT_COMMAND, help="emotion-edge on the device (--host only)")
    p.add_argument("--remote-config", default=DEFAULT_CONFIG, help="daemon config on the device (--host only)")
    p.add_argument("--reload-command", default=DEFAULT_RELOAD,
                   help="run on the device after the flip (--host only; '' if the daemon reloads by itself)")
    p.add_argument("--ssh-option", action="append", default=[], metavar="KEY=VALUE", help="extra ssh -o (--host only)")
    p.add_argument("--health-timeout", type=float, default=60.0,
                   help="seconds a device has to report the new model (--host only)")
    p.add_argument("--parallel", type=int, default=4, help="hosts deployed at once after the canary")
    p.add_argument("--parity-data", metavar="FER2013",
                   help="check the model on a PrivateTest sample before deploying (default: a random-crop invoke)")


def _hosts(args: argparse.Namespace) -> list[Host]:
    from emotion_edge.systemd.inventory import load_inventory, parse_host_spec

    if args.inventory:
        return load_inventory(args.inventory)
    return [parse_host_spec(spec, identity_file=args.identity, command=args.remote_command, config=args.remote_config,
                            reload_command=args.reload_command, ssh_options=tuple(args.ssh_option),
                            health_timeout_s=args.health_timeout) for spec in args.host]


def _deploy_model(model: Path, args: argparse.Namespace, dry_run: bool = False) -> int:
    from emotion_edge.systemd.deploy import DeployError, check_model, deploy, plan

    hosts = _hosts(args)
    try:
        package = check_model(model, args.parity_data)
    except DeployError as exc:
        print(f"emotion-edge deploy: {exc}; no device was touched", file=sys.stderr)
        return 2
    if dry_run:
        print("\n".join(plan(hosts, package)))
        print("dry run: nothing was copied or changed")
        return 0
    results = deploy(hosts, package, parallel=args.parallel)
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1


def add_deploy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="put a model on devices over ssh; roll back any that do not run it (workstation)",
                       description="Check the model, copy it to each device as models/<sha256>.tflite, flip "
                                   "`current`, reload, and wait until the device reports the new model. A device "
                                   "that fails is rolled back. The first host is the canary; the rest follow in "
                                   "parallel only if it succeeds. Exit status 1 if any host failed.")
    p.add_argument("model", type=Path, help="int8 .tflite with its .json contract (from `emotion-edge quantize`)")
    _add_target_args(p)
    p.add_argument("--dry-run", action="store_true",
                   help="check the model and show each host's current model and the steps; change nothing")
    p.set_defaults(handler=lambda args: _deploy_model(args.model, args, args.dry_run))


def add_retrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="train, quantize, gate against the deployed model, deploy (workstation)",
                       description="Train a new model, quantize it (parity gate), and deploy it only if it is not "
                                   "worse on PublicTest than the model the canary runs (or --baseline).")
    p.add_argument("--data", required=True, help="FER2013 CSV or image folders")
    p.add_argument("--run-dir", required=True, type=Path, help="training run folder")
    p.add_argument("--out", required=True, type=Path, help="the int8 model to write, e.g. models/edge-vgg-v2.tflite")
    p.add_argument("--arch", default="edge-vgg", choices=["edge-vgg", "seed-model2", "seed-cnn"])
    p.add_argument("--epochs", type=int, default=26)
    p.add_argument("--resume", action="store_true", help="continue an interrupted training run")
    p.add_argument("--max-drop", type=float, default=1.0, help="parity gate: largest int8 accuracy loss, points")
    p.add_argument("--min-agreement", type=float, default=0.97, help="parity gate: smallest top-1 agreement")
    p.add_argument("--baseline", type=Path,
                   help="the deployed model's file, evaluated on --data's PublicTest (default: the accuracy in the "
                        "sidecar of the canary's current model)")
    p.add_argument("--tolerance", type=float, default=0.0, help="PublicTest points the new model may lose")
    p.add_argument("--no-deploy", action="store_true",
                   help="stop after the gates; needs no --host or --inventory (without --baseline as well, only the "
                        "parity gate judges the new model)")
    _add_target_args(p, required=False)
    p.set_defaults(handler=_run_retrain)


def _canary_accuracy(args: argparse.Namespace) -> float | None:
    from emotion_edge.systemd.deploy import Remote

    status = Remote(_hosts(args)[0]).device_model("status")
    accuracy = (status.get("int8_accuracy") or {}).get("val")
    return None if accuracy is None else float(accuracy)


def _check_retrain_targets(args: argparse.Namespace) -> None:
    """Before hours of training: a deploy needs its devices; a run that only gates needs none."""
    if not args.no_deploy and not (args.host or args.inventory):
        raise UsageError("deploying the new model needs the devices: give --host [USER@]HOST (repeatable) or "
                         "--inventory FILE, or --no-deploy to stop after the gates")
    if args.no_deploy and not (args.host or args.inventory or args.baseline):
        log.warning("retrain: no --baseline and no device to read the deployed model's accuracy from; "
                    "only the parity gate judges the new model")


def _run_retrain(args: argparse.Namespace) -> int:
    _check_retrain_targets(args)
    from emotion_edge.training.cli import use_fast_cpu_kernels

    use_fast_cpu_kernels()
    from emotion_edge.quantize import QuantizeOptions
    from emotion_edge.quantize.parity import ParityGate
    from emotion_edge.systemd.retrain import Stages, accuracy_on_public_test, quantize_candidate, run_retrain
    from emotion_edge.training.train import TrainConfig, train

    config = TrainConfig(data=args.data, run_dir=str(args.run_dir), arch=args.arch, epochs=args.epochs)
    options = QuantizeOptions(data=args.data, gate=ParityGate(args.max_drop, args.min_agreement))
    stages = Stages(
        train=lambda: train(config, resume=args.resume),
        quantize=lambda: quantize_candidate(args.run_dir, args.out, options),
        baseline_accuracy=(lambda: accuracy_on_public_test(args.baseline, args.data)) if args.baseline
        else (lambda: _canary_accuracy(args)) if args.host or args.inventory else (lambda: None),
        deploy=lambda model: _deploy_model(model, args),
    )
    outcome = run_retrain(stages, args.tolerance, deploy=not args.no_deploy)
    print(f"retrain: {outcome.reason}" + (f" (model {outcome.model})" if outcome.model else ""))
    return outcome.exit_code


def add_install(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install", help="install or remove the boot-time service on this Pi (runs systemd/install.sh)",
                       description="Idempotent: creates the emotion-edge user, a venv with system site packages "
                                   "(picamera2 from python3-picamera2), /etc/emotion-edge/config.toml if absent "
                                   "(with this machine's device_id), "
                                   "/var/lib/emotion-edge/models with a `current` link, and enables the unit.")
    p.add_argument("--uninstall", action="store_true",
                   help="clear the device's retained MQTT topics and Home Assistant entities (emotion-edge forget), "
                        "remove the service and venv, keep config and models")
    p.add_argument("--purge", action="store_true", help="with --uninstall: also remove config, models and the user")
    p.add_argument("--source", type=Path, help="emotion-edge checkout to install from (default: this one)")
    p.add_argument("--deploy-user", help="login user that may deploy models (joins the emotion-edge group)")
    p.add_argument("--no-start", action="store_true", help="enable the unit but do not (re)start it")
    p.set_defaults(handler=_run_install)


def _checkout() -> Path:
    """The source tree this command runs from (an editable install); install.sh installs that tree."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").exists():
        raise UsageError(f"{root}: not an emotion-edge checkout; pass --source DIR (a git clone or unpacked sdist)")
    return root


def _run_install(args: argparse.Namespace) -> int:
    source = args.source or _checkout()
    argv = ["bash", str(source / "systemd" / "install.sh"), "--source", str(source)]
    argv += ["--uninstall"] * args.uninstall + ["--purge"] * args.purge + ["--no-start"] * args.no_start
    argv += ["--deploy-user", args.deploy_user] if args.deploy_user else []
    return subprocess.run(argv, check=False, stdout=sys.stdout, stderr=sys.stderr).returncode
