"""The sequence mark: a small JSON file beside the spool (`<spool>.seq`, written atomically and synced) that
outlives a spool lost to corruption or deletion. It holds the numbering's `stream`, a `seq` above every one issued
in it, and the tracks open when it was last written. Why each is needed, and when it is written: mqtt/spool.py.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from emotion_edge.device.atomic import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenTrack:
    """A track the subscribers saw open: its id, and the seq and payload (JSON text) of its latest event."""

    id: str
    seq: int
    event: str


@dataclass(frozen=True)
class SeqMark:
    """The mark file's content: the numbering's stream, a `seq` above every one issued in it, and the tracks open
    when it was written (for a spool that gets lost)."""

    stream: str
    above: int
    open: tuple[OpenTrack, ...] = ()

    @staticmethod
    def path_for(spool: Path) -> Path:
        return spool.with_name(spool.name + ".seq")

    @classmethod
    def read(cls, path: Path) -> SeqMark | None:
        """The mark, or None when there is none (first start, wiped) or it is unreadable (logged)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tracks = tuple(OpenTrack(str(t["id"]), int(t["seq"]), str(t["event"])) for t in data.get("open", ()))
            return cls(str(data["stream"]), int(data["above"]), tracks)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("spool: the sequence mark %s is unreadable (%s); numbering goes on from the spool", path, exc,
                      extra={"mark": str(path)})
            return None

    def write(self, path: Path) -> None:
        tracks = [{"id": t.id, "seq": t.seq, "event": t.event} for t in self.open]
        write_atomic(path, json.dumps({"stream": self.stream, "above": self.above, "open": tracks}) + "\n",
                     durable=True)


def new_stream() -> str:
    return secrets.token_hex(6)
