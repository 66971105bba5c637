"""`emotion-edge train` and `emotion-edge evaluate`: argument parsing only; TensorFlow loads on use."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path

from emotion_edge.device.commands.options import DefaultsHelpFormatter
from emotion_edge.device.errors import UsageError
from emotion_edge.training.train import TrainConfig

# The architectures' names without importing Keras (the CLI must start fast); models.py checks they match.
ARCHITECTURE_NAMES = ("edge-vgg", "edge-vgg-m", "edge-vgg-l", "seed-model2", "seed-cnn")


def use_fast_cpu_kernels() -> None:
    """oneDNN convolutions train FER nets ~2x faster on x86 CPUs; must be set before TensorFlow loads."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if not callable(f.default)}


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a network on FER2013 (workstation)",
                       description="Train a network on FER2013 into a resumable run folder with reports.",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="FER2013 CSV (.csv/.csv.gz) or image-folder root")
    p.add_argument("--run-dir", required=True, type=Path, help="run folder (created; reused with --resume)")
    p.add_argument("--arch", default=_DEFAULTS["arch"], choices=list(ARCHITECTURE_NAMES),
                   help="network: edge-vgg (this project's), edge-vgg-m/-l (larger), seed-model2/seed-cnn "
                        "(the seed paper's); see README")
    p.add_argument("--classes", default="", help="comma-separated subset, e.g. angry,happy,sad,surprise,neutral")
    p.add_argument("--protocol", default=_DEFAULTS["protocol"], choices=["official", "stratified"],
                   help="official Training/PublicTest/PrivateTest, or the seed paper's stratified 80:10:10")
    p.add_argument("--epochs", type=int, default=_DEFAULTS["epochs"],
                   help="most epochs to train (early stopping may end sooner; see --patience)")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS["batch_size"], help="faces per training step")
    p.add_argument("--learning-rate", type=float, default=_DEFAULTS["learning_rate"],
                   help="peak learning rate, reached after the warm-up, then cosine-decayed")
    p.add_argument("--label-smoothing", type=float, default=_DEFAULTS["label_smoothing"],
                   help="share of each one-hot label spread over the other classes (0: none)")
    p.add_argument("--optimizer", default=_DEFAULTS["optimizer"], choices=["adamw", "sgd"],
                   help="AdamW, or SGD with Nesterov momentum (both with decoupled weight decay)")
    p.add_argument("--momentum", type=float, default=_DEFAULTS["momentum"], help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=_DEFAULTS["weight_decay"], help="decoupled weight decay")
    p.add_argument("--warmup-epochs", type=int, default=_DEFAULTS["warmup_epochs"],
                   help="linear learning-rate warm-up before the cosine decay")
    p.add_argument("--precision", default=_DEFAULTS["precision"], choices=["auto", "bf16", "fp32"],
                   help="auto: bf16 where the CPU computes it natively (AVX-512 BF16, AMX), else fp32")
    p.add_argument("--class-weight", default=_DEFAULTS["class_weight"], choices=["none", "sqrt", "balanced"],
                   help="loss weight per class against FER2013's imbalance: none, inverse square root of the "
                        "class's frequency, or inverse frequency")
    p.add_argument("--patience", type=int, default=_DEFAULTS["patience"], help="early-stopping patience (epochs)")
    p.add_argument("--seed", type=int, default=_DEFAULTS["seed"],
                   help="seed of the weights, the shuffling, the augmentation and the stratified split")
    p.add_argument("--no-augment", action="store_true",
                   help="train on the faces as they are (default: random crops, zoom, flips, "
                        "brightness/contrast jitter and erasing)")
    p.add_argument("--no-tta", action="store_true", help="no horizontal-flip averaging in the reports")
    p.add_argument("--skip-bad", action="store_true", help="skip and count bad records instead of stopping")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training faces (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    p.add_argument("--snapshot-every", type=int, default=0, metavar="N",
                   help="also keep every Nth epoch's inference model as snapshots/epoch-N.keras (members for "
                        "`emotion-edge ensemble`; about 3 MB each for edge-vgg); may be added on --resume")
    p.add_argument("--init-from", default="", metavar="MODEL",
                   help="start from this trained model's weights (run folder or .keras; same --arch and classes) "
                        "instead of random ones, under this run's own schedule: a new cosine cycle makes a "
                        "snapshot-ensemble member, or fine-tunes")
    d = p.add_argument_group("distillation", "soft targets from teacher outputs (`emotion-edge teacher-outputs`)")
    d.add_argument("--teacher", action="append", default=[], metavar="FILE.npz",
                   help="teacher-outputs file; repeat to distil from the average of several (an ensemble)")
    d.add_argument("--distill-alpha", type=float, default=_DEFAULTS["distill_alpha"],
                   help="weight of the teacher's soft targets; 1 - alpha goes to the smoothed labels")
    d.add_argument("--distill-temperature", type=float, default=_DEFAULTS["distill_temperature"],
                   help="softening temperature T (the soft-target loss is scaled by T^2)")
    d.add_argument("--ferplus-votes", default="", metavar="CSV",
                   help="FER+ votes (ferplus-votes.csv) as an auxiliary soft target; contempt/unknown/NF dropped")
    d.add_argument("--ferplus-weight", type=float, default=_DEFAULTS["ferplus_weight"],
                   help="weight of the FER+ auxiliary loss (0: off)")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    use_fast_cpu_kernels()
    from emotion_edge.training.train import train

    config = TrainConfig(
        data=args.data, run_dir=str(args.run_dir), arch=args.arch,
        classes=[c for c in args.classes.split(",") if c.strip()], protocol=args.protocol,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        label_smoothing=args.label_smoothing, class_weight=args.class_weight, patience=args.patience,
        optimizer=args.optimizer, momentum=args.momentum, weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs, precision=args.precision,
        seed=args.seed, augment=not args.no_augment, tta=not args.no_tta, skip_bad=args.skip_bad, limit=args.limit,
        teachers=[str(Path(t)) for t in args.teacher], distill_alpha=args.distill_alpha,
        distill_temperature=args.distill_temperature, ferplus_votes=args.ferplus_votes,
        ferplus_weight=args.ferplus_weight, init_from=args.init_from, snapshot_every=args.snapshot_every,
    )
    if config.snapshot_every < 0:
        raise UsageError(f"--snapshot-every {config.snapshot_every}: must be 0 (none) or a number of epochs")
    if not 0.0 <= config.distill_alpha <= 1.0 or config.distill_temperature <= 0:
        raise UsageError(f"--distill-alpha {config.distill_alpha} must be in 0-1 and --distill-temperature "
                         f"{config.distill_temperature} above 0")
    metrics = train(config, resume=args.resume)
    val = metrics["val"]
    print(f"{args.run_dir}: validation accuracy {val['accuracy']:.4f}, macro-F1 {val['macro_f1']:.4f} "
          f"(best epoch {metrics['best_epoch']} of {metrics['epochs_done']})")
    return 0


def add_teacher_outputs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teacher-outputs", help="save a trained teacher's soft outputs for distillation",
                       description="Run a trained model over every Training and PublicTest face (never PrivateTest), "
                                   "flip-averaged and optionally over augmented views, and save the averaged "
                                   "probabilities compactly (float16 log-probabilities, compressed .npz keyed by "
                                   "FER2013 row and the CSV's sha256 and size). The file holds no images or labels. "
                                   "Use it with `emotion-edge train --teacher FILE.npz`.",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("model", help="teacher: run folder, .keras file or .tflite file")
    p.add_argument("--data", required=True, help="the FER2013 CSV (.csv/.csv.gz) the student will train on")
    p.add_argument("--out", required=True, type=Path, help="output .npz, e.g. runs/teachers/vgg-l.npz")
    p.add_argument("--views", type=int, default=0, help="augmented views per face averaged in (each flip-averaged)")
    p.add_argument("--view-strength", type=float, default=0.5, help="augmentation strength of those views (0-1)")
    p.add_argument("--seed", type=int, default=_DEFAULTS["seed"], help="seed of the augmented views")
    p.set_defaults(handler=_run_teacher_outputs)


def _run_teacher_outputs(args: argparse.Namespace) -> int:
    use_fast_cpu_kernels()
    from emotion_edge.training.distill import compute_teacher_outputs, save_teacher_outputs

    if args.views < 0:
        raise UsageError(f"--views {args.views}: must be 0 or more")
    outputs = compute_teacher_outputs(args.model, args.data, args.views, args.seed, args.view_strength)
    path = save_teacher_outputs(args.out, outputs)
    print(f"{path}: {len(outputs.rows)} faces x {len(outputs.labels)} classes from {outputs.source}, "
          f"{path.stat().st_size / 1e6:.2f} MB; data {outputs.data.short()}")
    return 0


def add_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="average several trained networks into one model",
                       description="Build one Keras model whose output is the average of its members' probabilities "
                                   "(one input, one output: `quantize`, `evaluate`, `teacher-outputs` and the device "
                                   "take it like any model; it costs the sum of its members per face). With --data, "
                                   "reports the ensemble and each member on PublicTest, never PrivateTest.",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("members", nargs="+", help="run folders or .keras files (at least two; same labels and split)")
    p.add_argument("--out", required=True, type=Path, help="ensemble folder (model.keras, config.json, reports)")
    p.add_argument("--data", help="FER2013 CSV: report PublicTest accuracy of the ensemble and of each member")
    p.add_argument("--select", type=int, default=0, metavar="K",
                   help="keep K of the candidates, chosen greedily by the ensemble's PublicTest accuracy (needs "
                        "--data; 0: keep them all)")
    p.add_argument("--no-tta", action="store_true", help="no horizontal-flip averaging in the reports")
    p.set_defaults(handler=_run_ensemble)


def _run_ensemble(args: argparse.Namespace) -> int:
    use_fast_cpu_kernels()
    from emotion_edge.training.ensemble import write_ensemble

    result = write_ensemble(args.members, args.out, args.data, tta=not args.no_tta, select=args.select)
    for step in result.get("selection", []):
        print(f"  selected {step['model']} (alone {step['val_accuracy']:.4f}): ensemble PublicTest accuracy "
              f"{step['ensemble_val_accuracy_after']:.4f}")
    print(f"{args.out / 'model.keras'}: the mean of {len(result['members'])} members")
    if "val" in result:
        for member in result["members"]:
            print(f"  {member['model']}: PublicTest accuracy {member['val_accuracy']:.4f}")
        print(f"ensemble: PublicTest accuracy {result['val']['accuracy']:.4f}, macro-F1 {result['val']['macro_f1']:.4f}"
              f" (tta={result['tta']}), {result['macs'] / 1e6:.1f} M MACs")
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="report a Keras or .tflite model on a FER2013 split",
                       description="Accuracy, macro-F1, per-class F1, confusion matrix and report for one split.",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("model", help="run folder, .keras file or .tflite file (with its .json contract)")
    p.add_argument("--data", required=True, help="FER2013 CSV (.csv/.csv.gz) or image-folder root")
    p.add_argument("--split", default="PrivateTest", help="Training, PublicTest or PrivateTest")
    p.add_argument("--protocol", default="official", choices=["official", "stratified"],
                   help="official Training/PublicTest/PrivateTest, or the seed paper's stratified 80:10:10 "
                        "(use the one the model was trained with)")
    p.add_argument("--seed", type=int, default=_DEFAULTS["seed"], help="seed of the stratified protocol")
    p.add_argument("--tta", action="store_true", help="average with horizontally flipped faces")
    p.add_argument("--out", type=Path, help="report folder (default: eval-<split> beside the model)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip and count bad records instead of stopping at the first (default: stop)")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    use_fast_cpu_kernels()
    from emotion_edge.training.evaluate import evaluate
    from emotion_edge.training.splits import canonical_split

    model = Path(args.model)
    base = model if model.is_dir() else model.parent
    out = args.out or base / f"eval-{model.stem if not model.is_dir() else 'model'}-{canonical_split(args.split)}"
    result = evaluate(model, args.data, args.split, out, args.tta, args.protocol, args.seed, args.skip_bad)
    f1 = ", ".join(f"{k} {v:.3f}" for k, v in result["per_class_f1"].items())
    print(f"{args.model} on {result['split']} ({result['samples']} faces, tta={result['tta']}): "
          f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}\nper-class F1: {f1}\nreports: {out}")
    return 0
