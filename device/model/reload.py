"""Hot reload: validate a new model before the daemon lets go of the running one."""

from __future__ import annotations

from pathlib import Path

from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.model.classifier import EmotionClassifier


class ReloadRefused(EmotionEdgeError, ValueError):
    """A new model that loads fine but cannot replace the running one without a restart."""


def load_replacement(path: Path, threads: int, running: EmotionClassifier) -> EmotionClassifier:
    """The model now at `path`, loaded and validated; raises with the reason, and the caller keeps `running`.

    The labels must stay the same: the MQTT schema, the smoothing state and every
    consumer of readings were built for them, so a different class set needs a restart.
    """
    candidate = EmotionClassifier(path, threads=threads)
    if candidate.labels != running.labels:
        raise ReloadRefused(
            f"{candidate.path}: labels {list(candidate.labels)} differ from the running model's "
            f"{list(running.labels)}; a model with other classes needs a service restart, not a reload"
        )
    return candidate
