"""Where a trained model and its run's config live, for every command that takes "a run folder or a .keras file".

A run folder (`emotion-edge train`, `emotion-edge ensemble`) holds model.keras and config.json; a run trained
with --snapshot-every keeps more inference models under snapshots/, whose config is the run folder's.
"""

from __future__ import annotations

import json
from pathlib import Path

from emotion_edge.device.errors import UsageError

MODEL = "model.keras"
CONFIG = "config.json"
SNAPSHOTS = "snapshots"


def model_file(path: str | Path, what: str = "model") -> Path:
    """A run folder's model.keras, or a .keras file as given; `what` names the argument in the error."""
    path = Path(path)
    found = path / MODEL if path.is_dir() else path
    if found.suffix != ".keras" or not found.is_file():
        raise UsageError(f"{what} {path}: not a trained Keras model; give a run folder from `emotion-edge train` "
                         f"(with its {MODEL}) or a .keras file")
    return found


def run_config(found: Path) -> dict:
    """The config.json of the run that made this model file ({} for a bare .keras file: seven labels, official
    split, the defaults)."""
    folder = found.parent.parent if found.parent.name == SNAPSHOTS else found.parent
    config = folder / CONFIG
    return json.loads(config.read_text()) if config.is_file() else {}


def snapshot_path(run: Path, epoch: int) -> Path:
    return run / SNAPSHOTS / f"epoch-{epoch:03d}.keras"
