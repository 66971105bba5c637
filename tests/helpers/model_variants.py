"""Distinct, valid models for deploy and reload tests, without training one."""

from __future__ import annotations

import json
from pathlib import Path

from emotion_edge.device.model.metadata import file_sha256, packaged_model_path


def padded_model(folder: Path, tag: str, labels: list[str] | None = None) -> Path:
    """The shipped model with bytes appended (TFLite ignores trailing bytes): a new sha256, the same network.

    `labels` rewrites the contract's label order: still a valid contract, but not a hot-reloadable one.
    """
    src = packaged_model_path()
    out = folder / f"m-{tag}.tflite"
    out.write_bytes(src.read_bytes() + tag.encode().ljust(16, b"\0"))
    meta = json.loads(src.with_suffix(".json").read_text())
    meta["sha256"] = file_sha256(out)
    if labels:
        meta["labels"] = labels
    out.with_suffix(".json").write_text(json.dumps(meta))
    return out
