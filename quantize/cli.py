"""`emotion-edge quantize`: argument parsing only; TensorFlow loads on use."""

from __future__ import annotations

import argparse
from pathlib import Path

from emotion_edge.device.commands.options import DefaultsHelpFormatter
from emotion_edge.device.errors import UsageError


def add_quantize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="convert a trained model to int8 TFLite and prove parity (workstation)",
                       description="Full-integer int8 conversion with a parity report and gate. Exit status 1 "
                                   "when the int8 model loses too much accuracy or agrees on too few faces.",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("source", type=Path, help="run folder from `emotion-edge train`, or a .keras file")
    p.add_argument("--out", type=Path, required=True, help="output .tflite path, e.g. models/edge-vgg.tflite")
    p.add_argument("--data", required=True, help="FER2013 CSV or image folders (calibration and parity)")
    p.add_argument("--representative", type=int, default=300, help="calibration faces, stratified from Training")
    p.add_argument("--io-dtype", choices=["int8", "uint8"], default="int8", help="input/output tensor type")
    p.add_argument("--max-drop", type=float, default=1.0, help="largest allowed accuracy loss, in points")
    p.add_argument("--min-agreement", type=float, default=0.97, help="smallest allowed top-1 agreement (0-1)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the calibration sample")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip and count bad records instead of stopping at the first (default: stop)")
    p.add_argument("--single-pass", action="store_true",
                   help="contract without flip averaging: half the device's work per face, more int8 near-tie flips")
    p.set_defaults(handler=_run_quantize)


def _run_quantize(args: argparse.Namespace) -> int:
    from emotion_edge.training.cli import use_fast_cpu_kernels

    use_fast_cpu_kernels()
    from emotion_edge.quantize import QuantizeOptions, quantize
    from emotion_edge.quantize.parity import ParityGate

    if args.out.suffix != ".tflite":
        raise UsageError(f"--out {args.out}: must end in .tflite")
    options = QuantizeOptions(data=args.data, representative=args.representative, io_dtype=args.io_dtype,
                              seed=args.seed, gate=ParityGate(args.max_drop, args.min_agreement), skip_bad=args.skip_bad,
                              flip_average=not args.single_pass)
    result = quantize(args.source, args.out, options)
    print(result.model_path.with_suffix(".parity.md").read_text())
    print(f"model: {result.model_path}\ncontract: {result.model_path.with_suffix('.json')}\nreport: {result.report_path}")
    return 0 if result.passed else 1
