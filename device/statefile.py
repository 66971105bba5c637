"""Small JSON documents the daemon keeps across restarts in `[service] state_dir` (the detection switch, the Home
Assistant discovery it last published).

The folder is never created here: under systemd it is the unit's StateDirectory (/var/lib/emotion-edge). Elsewhere
(a demo on a laptop, a test) the first failed write logs one warning and the value lives on in memory only, the
way the status file behaves: a missing folder must not stop a sensor.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from emotion_edge.device.atomic import write_atomic

log = logging.getLogger(__name__)


class StateFile:
    """One JSON object at `path`; `load` gives {} when there is none (first start) or it cannot be read."""

    def __init__(self, path: Path | None):
        self.path = path
        self._warned = False

    def load(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("state file %s unreadable (%s); starting from defaults", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, data: dict[str, Any]) -> bool:
        """Replace the file atomically; False (logged once) when it cannot be written."""
        if self.path is None:
            return False
        try:
            write_atomic(self.path, json.dumps(data, sort_keys=True) + "\n", mode=0o644)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("state file %s cannot be written (%s); kept in memory only until the daemon stops "
                            "(its folder must exist: systemd creates /var/lib/emotion-edge as the unit's "
                            "StateDirectory)", self.path, exc.strerror or exc)
            return False
        return True

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
