"""Classify face crops with the int8 TFLite model: validated at load, one invoke per batch of faces."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotion_edge.device.contract import ContractError, ModelContract, average_mirrors, normalize, with_mirrors
from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.model.litert import dequantize, interpreter_class, quantize, read_tflite
from emotion_edge.device.model.metadata import ModelMetadata, TensorQuant, file_sha256, load_metadata

log = logging.getLogger(__name__)

_DTYPES = {"int8": np.int8, "uint8": np.uint8, "float32": np.float32}


class ModelError(EmotionEdgeError, ValueError):
    """A model file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class _Tensor:
    index: int
    dtype: type
    scale: float
    zero_point: int


def _interpreter_tensor(detail: dict) -> _Tensor:
    quant = tensor_quant(detail)
    return _Tensor(detail["index"], detail["dtype"], quant.scale, quant.zero_point)


def _check_against_contract(path: Path, meta: ModelMetadata, inp: dict, out: dict, require_int8: bool) -> None:
    """The sidecar must describe these tensors exactly; name the first field that disagrees."""
    contract = meta.contract
    in_shape = tuple(int(v) for v in inp["shape"][1:])
    if in_shape != contract.input_shape:
        raise ContractError(f"{path}: field 'input_size'/'channels' says {contract.input_shape}, model input is {in_shape}")
    classes = int(out["shape"][-1])
    if classes != contract.num_classes:
        raise ContractError(f"{path}: field 'labels' lists {contract.num_classes} classes, model outputs {classes}")
    for role, spec, detail in (("input", meta.input, inp), ("output", meta.output, out)):
        actual = tensor_quant(detail)
        if actual.dtype != spec.dtype:
            raise ContractError(f"{path}: field '{role}.dtype' says {spec.dtype}, model tensor is {actual.dtype}")
        if spec.dtype != "float32" and (
            not np.isclose(actual.scale, spec.scale, rtol=1e-6) or actual.zero_point != spec.zero_point
        ):
            raise ContractError(
                f"{path}: field '{role}.scale/zero_point' says ({spec.scale}, {spec.zero_point}), "
                f"model tensor has ({actual.scale}, {actual.zero_point})"
            )
    if require_int8 and meta.input.dtype == "float32":
        raise ModelError(f"{path}: is a float model; the device needs the full-integer int8 model from `emotion-edge quantize`")


class EmotionClassifier:
    """Loads and validates a model once; `classify` takes a batch of uint8 face crops."""

    def __init__(self, path: str | Path, threads: int = 1, require_int8: bool = True, check_sha: bool = True):
        # A `current` link is followed once, here: the model and its sidecar are both read from the
        # link's target, so a deploy flipping the link mid-load cannot pair one model with another's contract.
        self.path = Path(path).resolve()
        blob = read_tflite(self.path, ModelError)
        self.metadata = load_metadata(self.path)
        if check_sha and self.metadata.sha256 != file_sha256(self.path):
            raise ContractError(
                f"{self.path}: field 'sha256' does not match the file; the model was changed after its contract was written"
            )
        try:
            self._interpreter = interpreter_class()(model_content=blob, num_threads=max(1, int(threads)))
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: the interpreter rejected the model ({str(exc).splitlines()[0]})") from None
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{self.path}: expected one input and one output tensor, got {len(inputs)} and {len(outputs)}")
        _check_against_contract(self.path, self.metadata, inputs[0], outputs[0], require_int8)
        self._input = _interpreter_tensor(inputs[0])
        self._output = _interpreter_tensor(outputs[0])
        self._batch = int(inputs[0]["shape"][0])

    @property
    def contract(self) -> ModelContract:
        return self.metadata.contract

    @property
    def labels(self) -> tuple[str, ...]:
        return self.metadata.contract.labels

    @property
    def sha256(self) -> str:
        return self.metadata.sha256

    def _ensure_batch(self, n: int) -> None:
        if n != self._batch:
            self._interpreter.resize_tensor_input(self._input.index, [n, *self.contract.input_shape])
            self._interpreter.allocate_tensors()
            self._batch = n

    def classify(self, faces: np.ndarray, view: str | None = None) -> np.ndarray:
        """uint8 crops (N, S, S) -> probabilities (N, classes), all faces (and their mirrors, when the
        contract says flip_average) in one invoke.

        view: None, as the contract says; "original" or "mirror", that one view of each face only (the
        pipeline's `mirrors = "alternate"`, which lets the smoother average the two views over frames).
        """
        faces = np.asarray(faces)
        if faces.shape[0] == 0:
            return np.zeros((0, self.contract.num_classes), np.float32)
        if view not in (None, "original", "mirror"):
            raise ValueError(f"classify(): view must be None, 'original' or 'mirror', got {view!r}")
        flip = self.contract.flip_average and view is None
        if view == "mirror":
            faces = faces[:, :, ::-1]
        t = self._input
        x = quantize(normalize(with_mirrors(faces) if flip else faces), t.dtype, t.scale, t.zero_point)
        self._ensure_batch(x.shape[0])
        self._interpreter.set_tensor(self._input.index, x)
        self._interpreter.invoke()
        probs = dequantize(self._interpreter.get_tensor(self._output.index), self._output.scale, self._output.zero_point)
        return average_mirrors(probs) if flip else probs

    def classify_many(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Evaluation helper: bounded batches so memory stays flat on large test sets."""
        parts = [self.classify(faces[i : i + batch_size]) for i in range(0, len(faces), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.contract.num_classes), np.float32)


def tensor_quant(detail: dict) -> TensorQuant:
    """The metadata record of one interpreter tensor, as `quantize` writes it."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorQuant(np.dtype(detail["dtype"]).name, float(scale), int(zero_point))
