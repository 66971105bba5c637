"""`emotion-edge quantize`: convert, attach the contract, prove parity, and gate on it."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from emotion_edge.device.atomic import write_atomic
from emotion_edge.device.contract import ModelContract, average_mirrors, labels_for, normalize, with_mirrors
from emotion_edge.device.model.classifier import EmotionClassifier, tensor_quant
from emotion_edge.device.model.metadata import ModelMetadata, TensorQuant, file_sha256, save_metadata
from emotion_edge.quantize.convert import convert_int8, representative_sample
from emotion_edge.quantize.latency import ms_per_face
from emotion_edge.quantize.parity import ParityGate, SplitParity, compare, format_table, to_dict
from emotion_edge.training.fer2013 import load_fer2013
from emotion_edge.training.reports import write_json
from emotion_edge.training.splits import make_splits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizeOptions:
    data: str
    representative: int = 300
    io_dtype: str = "int8"
    seed: int = 1234
    gate: ParityGate = ParityGate()
    skip_bad: bool = False
    # Write flip_average into the contract: the device then averages each face with its mirror, and the
    # gate judges parity in that mode (single-pass figures are reported too).
    flip_average: bool = True


@dataclass(frozen=True)
class QuantizeResult:
    model_path: Path
    report_path: Path
    parity: list[SplitParity]  # in the contract's inference mode; the gate judges these
    single_pass: list[SplitParity]  # one view per face, reported for comparison
    failures: list[str]
    latency_ms: float

    @property
    def passed(self) -> bool:
        return not self.failures


def _resolve_source(source: Path) -> tuple[Path, dict]:
    """A run folder or a .keras file, plus the run's config (labels, protocol, architecture) if there is one."""
    from emotion_edge.training.runfolder import model_file, run_config

    found = model_file(source, "quantize source")
    return found, run_config(found)


def _write_atomic(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, blob)


def _interpreter_io(blob: bytes) -> tuple[TensorQuant, TensorQuant]:
    from emotion_edge.device.model.litert import interpreter_class

    interpreter = interpreter_class()(model_content=blob)
    return tensor_quant(interpreter.get_input_details()[0]), tensor_quant(interpreter.get_output_details()[0])


def quantize(source: Path, out: Path, options: QuantizeOptions) -> QuantizeResult:
    import keras

    model_file, config = _resolve_source(Path(source))
    contract = ModelContract(labels=labels_for(config.get("classes")), flip_average=options.flip_average)
    model = keras.models.load_model(model_file, compile=False)
    splits = make_splits(load_fer2013(options.data, skip_bad=options.skip_bad), contract.labels,
                         config.get("protocol", "official"), config.get("seed", options.seed))
    calibration = representative_sample(splits["train"], options.representative, options.seed)
    blob = convert_int8(model, calibration, options.io_dtype)

    candidate = out.with_name(out.stem + ".candidate.tflite")
    _write_atomic(candidate, blob)
    in_q, out_q = _interpreter_io(blob)
    source_info = {"run": str(model_file.parent), "model": model_file.name, "arch": config.get("arch"),
                   "config": config, "representative_faces": int(len(calibration))}
    # The candidate's contract is single-pass so one run over faces + mirrors yields both modes' figures.
    metadata = ModelMetadata(replace(contract, flip_average=False), in_q, out_q, file_sha256(candidate), source_info, {})
    save_metadata(candidate, metadata)

    classifier = EmotionClassifier(candidate, threads=1)
    both = [_parity_both_modes(name, splits[name], model, classifier, contract.labels)
            for name in ("val", "test") if len(splits[name])]
    single_pass = [single for single, _ in both]
    parity = [flipped for _, flipped in both] if options.flip_average else single_pass
    failures = options.gate.failures(parity)
    latency = ms_per_face(classifier, splits["val"].images[:1]) * (2 if options.flip_average else 1)
    sizes = {"keras_bytes": model_file.stat().st_size, "tflite_bytes": len(blob)}
    metrics = {"parity": [to_dict(p) for p in parity], "parity_single_pass": [to_dict(p) for p in single_pass],
               "flip_average": options.flip_average, "latency_ms_per_face_1_thread": latency, **sizes,
               "int8_accuracy": {p.split: p.int8_accuracy for p in parity}, "gate": asdict(options.gate),
               "gate_passed": not failures}

    final = out if not failures else out.with_name(out.stem + ".rejected.tflite")
    os.replace(candidate, final)
    candidate.with_suffix(".json").unlink()
    save_metadata(final, ModelMetadata(contract, in_q, out_q, metadata.sha256, source_info, metrics))
    report = final.with_suffix(".parity.json")
    write_json(report, {"model": str(final), "failures": failures, **metrics})
    final.with_suffix(".parity.md").write_text(
        render_report(final, parity, single_pass, options.flip_average, latency, sizes, failures) + "\n")
    return QuantizeResult(final, report, parity, single_pass, failures, latency)


def _parity_both_modes(name: str, split, model, classifier: EmotionClassifier,
                       labels: tuple[str, ...]) -> tuple[SplitParity, SplitParity]:
    """Single-pass and flip-averaged parity from one float and one int8 run over the faces and their mirrors."""
    views = with_mirrors(split.images)
    float_probs = np.asarray(model.predict(normalize(views), batch_size=256, verbose=0), np.float64)
    int8_probs = classifier.classify_many(views).astype(np.float64)
    n = len(split)
    return (compare(name, split, float_probs[:n], int8_probs[:n], labels),
            compare(name, split, average_mirrors(float_probs), average_mirrors(int8_probs), labels))


def render_report(model: Path, parity: list[SplitParity], single_pass: list[SplitParity], flip_average: bool,
                  latency: float, sizes: dict, failures: list[str]) -> str:
    mode = "flip-averaged (each face with its mirror, as the device runs this model)" if flip_average else "single pass"
    lines = [f"# int8 parity: {model.name}", "", f"Inference mode of the contract: {mode}.", "",
             format_table(parity), "",
             "Per-class recall change, int8 minus float (points):", "",
             "| split | " + " | ".join(parity[0].per_class_recall_delta) + " |",
             "|---|" + "---|" * len(parity[0].per_class_recall_delta)]
    for p in parity:
        lines.append(f"| {p.split} | " + " | ".join(f"{v:+.2f}" for v in p.per_class_recall_delta.values()) + " |")
    if flip_average:
        lines += ["", "Single pass (one view per face), for comparison:", "", format_table(single_pass)]
    lines += ["", f"Sizes: Keras {sizes['keras_bytes'] / 1e6:.2f} MB, int8 TFLite {sizes['tflite_bytes'] / 1e6:.2f} MB. "
              f"Latency: {latency:.2f} ms per face in this mode (one thread, median).", "",
              "Gate: " + ("PASSED" if not failures else "FAILED: " + "; ".join(failures))]
    return "\n".join(lines)
