"""The recording: one SQLite file holding every event, room state and stats message of one or more devices.

Schema (README "Recording and reports" documents it as a table):

- `events`: one row per event, identity `(device_id, seq)`: `seq` is per device, persisted with the device's
  spool and never reused, so a redelivered event (MQTT QoS 1 is at least once) is the same row and is ignored.
- `states`: one row per room state, identity `(device_id, time)` (the retained state comes again on every
  reconnect: same device and time, same row).
- `stats`: one row per stats message, identity `(device_id, time)`.
- `meta`: the schema version.

Append-only: rows are only ever inserted (`INSERT OR IGNORE`), in WAL mode, one transaction per batch, so a
recorder stopped at any point leaves every committed batch intact and a restarted one appends after it.
"""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from emotion_edge.device.errors import EmotionEdgeError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TABLES = ("events", "states", "stats")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    unix REAL NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    track_age_s REAL NOT NULL,
    emotion TEXT,
    confidence REAL,
    before_emotion TEXT,
    received REAL NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (device_id, seq)
);
CREATE INDEX IF NOT EXISTS events_unix ON events (unix);
CREATE INDEX IF NOT EXISTS events_track ON events (device_id, track_id, unix);
CREATE TABLE IF NOT EXISTS states (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    time TEXT NOT NULL,
    unix REAL NOT NULL,
    faces INTEGER NOT NULL,
    dominant TEXT,
    confidence REAL NOT NULL,
    counts TEXT NOT NULL,
    received REAL NOT NULL,
    UNIQUE (device_id, time)
);
CREATE INDEX IF NOT EXISTS states_unix ON states (unix);
CREATE TABLE IF NOT EXISTS stats (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    time TEXT NOT NULL,
    unix REAL NOT NULL,
    fps REAL,
    cpu_temp_c REAL,
    received REAL NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (device_id, time)
);
CREATE INDEX IF NOT EXISTS stats_unix ON stats (unix);
"""


class RecordingError(EmotionEdgeError):
    """A recording that cannot be opened, written or read (not SQLite, a newer schema, a read-only place)."""


@dataclass(frozen=True)
class Message:
    """One received MQTT message worth keeping: its kind (events, state, stats), parsed payload, arrival time."""

    kind: str
    payload: dict[str, Any]
    received: float  # Unix seconds on the recorder's clock


@dataclass(frozen=True)
class BatchResult:
    inserted: int
    duplicates: int
    ignored: int  # not an event, state or stats object of a known version


def unix_time(iso: str) -> float:
    """The payloads' `time` (ISO 8601 UTC with a Z) as Unix seconds."""
    import datetime

    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _event_row(p: dict[str, Any], received: float) -> tuple:
    face = p.get("after") or p.get("before") or {}
    before = p.get("before") or {}
    return (p["device_id"], int(p["seq"]), p["time"], unix_time(p["time"]), p["type"], p["reason"], int(p["track_id"]),
            float(p["track_age_s"]), face.get("emotion"), face.get("confidence"), before.get("emotion"), received,
            json.dumps(p, separators=(",", ":"), sort_keys=True))


def _state_row(p: dict[str, Any], received: float) -> tuple:
    return (p["device_id"], p["time"], unix_time(p["time"]), int(p["faces"]), p.get("dominant"),
            float(p["confidence"]), json.dumps(p["counts"], sort_keys=True), received)


def _stats_row(p: dict[str, Any], received: float) -> tuple:
    return (p["device_id"], p["time"], unix_time(p["time"]), p.get("fps"), p.get("cpu_temp_c"), received,
            json.dumps(p, separators=(",", ":"), sort_keys=True))


_INSERTS = {
    "events": ("INSERT OR IGNORE INTO events (device_id, seq, time, unix, type, reason, track_id, track_age_s, emotion,"
               " confidence, before_emotion, received, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", _event_row),
    "state": ("INSERT OR IGNORE INTO states (device_id, time, unix, faces, dominant, confidence, counts, received)"
              " VALUES (?,?,?,?,?,?,?,?)", _state_row),
    "stats": ("INSERT OR IGNORE INTO stats (device_id, time, unix, fps, cpu_temp_c, received, payload)"
              " VALUES (?,?,?,?,?,?,?)", _stats_row),
}


class RecordStore:
    """The SQLite recording; `append` writes one batch in one transaction. One writer thread per store."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = Path(path)
        if readonly and not self.path.exists():
            raise RecordingError(f"no recording at {self.path}")
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a power cut loses at most the last batch
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            version = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise RecordingError(f"{self.path} is not an emotion-edge recording: {exc}") from None
        if version is None or int(version[0]) > SCHEMA_VERSION:
            raise RecordingError(f"{self.path}: recording schema {version and version[0]} is newer than this "
                                 f"emotion-edge's {SCHEMA_VERSION}")

    @property
    def db(self) -> sqlite3.Connection:
        return self._db

    def append(self, messages: Iterable[Message]) -> BatchResult:
        inserted = duplicates = ignored = 0
        try:
            self._db.execute("BEGIN")
            for message in messages:
                insert = _INSERTS.get(message.kind)
                if insert is None or not isinstance(message.payload, dict) or message.payload.get("version") != 1:
                    ignored += 1
                    continue
                try:
                    row = insert[1](message.payload, message.received)
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("skipping a malformed %s message: %s", message.kind, exc)
                    ignored += 1
                    continue
                changed = self._db.execute(insert[0], row).rowcount
                inserted += changed
                duplicates += 1 - changed
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise RecordingError(f"cannot write {self.path}: {exc}") from None
        return BatchResult(inserted, duplicates, ignored)

    def counts(self) -> dict[str, int]:
        return {table: self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in TABLES}

    def export_csv(self, directory: Path) -> list[Path]:
        """One CSV per table (events.csv, states.csv, stats.csv), rows in time order; returns the files."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for table in TABLES:
            cursor = self._db.execute(f"SELECT * FROM {table} ORDER BY unix, id")
            path = directory / f"{table}.csv"
            with path.open("w", newline="") as out:
                writer = csv.writer(out)
                writer.writerow([column[0] for column in cursor.description])
                writer.writerows(cursor)
            written.append(path)
        return written

    def close(self) -> None:
        self._db.close()
