"""The model's sidecar metadata (`<model>.json`): its contract, quantization, provenance and metrics.

The device refuses a model whose sidecar is missing or contradicts the model's
tensors, naming the field, so a wrong model never produces confident nonsense.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emotion_edge.device.atomic import write_atomic
from emotion_edge.device.contract import ContractError, ModelContract

FORMAT = "emotion-edge-model/1"


@dataclass(frozen=True)
class TensorQuant:
    dtype: str  # "int8", "uint8" or "float32"
    scale: float = 0.0
    zero_point: int = 0


@dataclass(frozen=True)
class ModelMetadata:
    contract: ModelContract
    input: TensorQuant
    output: TensorQuant
    sha256: str
    source: dict[str, Any] = field(default_factory=dict)  # training run, architecture, command
    metrics: dict[str, Any] = field(default_factory=dict)  # accuracy, macro-F1, parity figures

    def to_dict(self) -> dict[str, Any]:
        contract = asdict(self.contract)
        contract.pop("extra")
        contract["labels"] = list(self.contract.labels)
        return {
            "format": FORMAT,
            **contract,
            "input": asdict(self.input),
            "output": asdict(self.output),
            "sha256": self.sha256,
            "source": self.source,
            "metrics": self.metrics,
        }


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _field(raw: dict, name: str, kind: type, where: Path) -> Any:
    if name not in raw:
        raise ContractError(f"{where}: field '{name}' is missing")
    value = raw[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ContractError(f"{where}: field '{name}' should be {kind.__name__}, got {type(value).__name__}")
    return value


def _tensor(raw: dict, name: str, where: Path) -> TensorQuant:
    spec = _field(raw, name, dict, where)
    dtype = _field(spec, "dtype", str, where)
    if dtype not in {"int8", "uint8", "float32"}:
        raise ContractError(f"{where}: field '{name}.dtype' is {dtype!r}; expected int8, uint8 or float32")
    return TensorQuant(dtype, float(spec.get("scale", 0.0)), int(spec.get("zero_point", 0)))


def parse_metadata(raw: Any, where: Path) -> ModelMetadata:
    if not isinstance(raw, dict):
        raise ContractError(f"{where}: expected a JSON object")
    if raw.get("format") != FORMAT:
        raise ContractError(f"{where}: field 'format' is {raw.get('format')!r}; expected {FORMAT!r}")
    try:
        contract = ModelContract(
            labels=tuple(_field(raw, "labels", list, where)),
            input_size=_field(raw, "input_size", int, where),
            channels=_field(raw, "channels", int, where),
            preprocessing=_field(raw, "preprocessing", str, where),
            face_margin=_field(raw, "face_margin", float, where),
            # Absent in contracts written before the field existed: those models run single-pass.
            flip_average=_field(raw, "flip_average", bool, where) if "flip_average" in raw else False,
        )
    except ContractError as exc:
        raise ContractError(f"{where}: {exc}") from None
    return ModelMetadata(
        contract=contract,
        input=_tensor(raw, "input", where),
        output=_tensor(raw, "output", where),
        sha256=_field(raw, "sha256", str, where),
        source=raw.get("source", {}),
        metrics=raw.get("metrics", {}),
    )


def load_metadata(model_path: Path) -> ModelMetadata:
    path = sidecar_path(model_path)
    if not path.exists():
        raise ContractError(
            f"{model_path}: its contract {path.name} is missing; a model must ship with the sidecar "
            "that `emotion-edge quantize` writes next to it"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"{path}: not readable JSON ({exc})") from None
    return parse_metadata(raw, path)


def save_metadata(model_path: Path, metadata: ModelMetadata) -> Path:
    path = sidecar_path(model_path)
    write_atomic(path, json.dumps(metadata.to_dict(), indent=2) + "\n", tmp=path.with_suffix(".json.tmp"))
    return path


def packaged_model_path() -> Path:
    """The int8 model shipped inside the package (models/ in the repository)."""
    from importlib.resources import files

    from emotion_edge.models import DEFAULT_MODEL

    return Path(str(files("emotion_edge.models") / DEFAULT_MODEL))
