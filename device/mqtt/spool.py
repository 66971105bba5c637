"""The on-disk queue of events not yet acknowledged by the broker: survives restarts and power cuts, bounded in size.

Every event goes through the spool, delivered or not: it is appended (and so
gets its sequence number) before it is published, and deleted only when the
broker acknowledges it (QoS 1 PUBACK). A broker outage, a lost network or a
killed daemon therefore leave the undelivered events here, to be sent in order
once a broker answers again.

Why SQLite in WAL mode: appends and deletes are small transactions that must
be atomic (a torn journal line after a power cut would need hand-written
recovery); WAL lets a reader (stats, tests, a curious operator with `sqlite3`)
look without blocking the writer.

Why `synchronous = FULL`: in WAL mode, NORMAL syncs only at checkpoints, so
transactions committed since the last one survive a process crash but can be
rolled back by a power cut. FULL syncs the WAL on every commit, which makes
"appended" mean "on the SD card". The price is one fsync per commit; events
come a few per second at most and are appended in batches on the publisher's
own thread (never the camera loop's), so the price is affordable.

Sequence numbers are per device, start at 1, increase by one per event and are
stored in the spool, so they keep increasing across restarts and never repeat
even after the spool empties. They never go back either when the spool itself
is lost (found corrupt and moved aside, or deleted): a small mark file beside it
(`<spool>.seq`, JSON, written atomically and synced) holds a number above every
`seq` ever issued (mqtt/mark.py). It is written once per start and once per
SEQ_BLOCK events (and when a track opens or ends, below), not for every event: the
spool's own counter is exact, the mark only bounds it. A
spool that is not the one the mark was written with (fresh, or replaced after
corruption) continues above the mark, a gap of at most SEQ_BLOCK plus the events
lost with the old file. The mark (and the spool) also hold the `stream`, a random
id chosen when numbering starts: within one stream `seq` only increases, and a
new stream (the spool and the mark both lost: a wiped state directory) is the
one case where `seq` may start again, which subscribers can tell. Dropping duplicates by (`stream`, `seq`), or
by `seq` alone while the stream stays the same, is therefore always safe.

A gap a subscriber sees means events were dropped by the size bound (counted in
`dropped`) or lost with a corrupt spool (logged), never by a delivery failure.

The spool also keeps each open track's last event (table `open_tracks`), in
the same transaction as the events themselves, so after a SIGKILL or power cut
it says exactly which tracks the subscribers saw open and never saw end: the
next start ends them (mqtt/delivery.py) before any new event. The mark file
carries them too (each open track's latest event when the mark was written),
rewritten whenever a track opens or ends, not per event: a spool that is lost
(corrupt, deleted) takes its `open_tracks` with it, and the new one starts with
the mark's instead, so those tracks still get their `end`. A track updated
since the mark was written ends from an older state (its `before`), never not
at all.

Bounded by `max_bytes` of payload: when an append would exceed it, the oldest
events are dropped first (an outage long enough to fill it makes the oldest
events the least useful) and counted, persistently.

A full disk is the same bound reached early: when an append fails with
SQLITE_FULL the oldest spooled events are dropped (counted) to make room and
the append is tried once more. If even that cannot be written, the error goes
to the caller, which keeps the events and retries (mqtt/delivery.py).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.mqtt.mark import OpenTrack, SeqMark, new_stream

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1), ('dropped', 0);
CREATE TABLE IF NOT EXISTS open_tracks (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS stream (id TEXT NOT NULL);
"""
SEQ_BLOCK = 1000  # seqs reserved per write of the mark file: one small synced write per this many events
WAL_PAGES = 64
WAL_BYTES = 256 * 1024
ACK_CHUNK = 100  # well under SQLite's limit on bound parameters per statement; a small WAL per transaction


class SpoolError(EmotionEdgeError, ValueError):
    """The spool file cannot be used; the message names the setting, the file and what to do (exit status 2)."""


@dataclass(frozen=True)
class TrackMark:
    """Which open track an appended event belongs to, and whether it ends it (kept in `open_tracks` until then)."""

    id: str
    ends: bool


@dataclass(frozen=True)
class SpoolStats:
    depth: int  # events waiting for an acknowledgement
    bytes: int  # their payload bytes
    dropped: int  # events ever dropped by the size bound (persistent)
    next_seq: int


class Spool:
    """Single-writer: use one instance from one thread at a time (the MQTT publisher's worker)."""

    def __init__(self, path: Path, max_bytes: int):
        self.path = path
        self.max_bytes = max_bytes
        self.mark_path = SeqMark.path_for(path)
        mark = SeqMark.read(self.mark_path)
        self._db = _open(path)
        self._depth, self._bytes = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
        self._next_seq = self._meta("next_seq")
        self._dropped = self._meta("dropped")
        lineage = self._db.execute("SELECT id FROM stream").fetchone()  # the stream this spool numbered in
        self.stream = mark.stream if mark is not None else lineage[0] if lineage is not None else new_stream()
        self._mark = SeqMark(self.stream, 0)  # nothing reserved yet
        self._mark_failing = False
        if mark is not None and (lineage[0] if lineage is not None else None) != mark.stream:
            self._adopt_open_tracks(mark.open)  # before the first reserve, which writes the open tracks again
        self._open = {track_id: OpenTrack(track_id, seq, bytes(payload).decode()) for track_id, seq, payload
                      in self._db.execute("SELECT id, seq, payload FROM open_tracks ORDER BY seq")}
        self._continue_numbering(mark, lineage[0] if lineage is not None else None)

    def _adopt_open_tracks(self, tracks: tuple[OpenTrack, ...]) -> None:
        """A spool that is not the one the mark was written with (the old one corrupt or deleted) starts with the
        tracks the mark says were open, so the next start still ends them."""
        if not tracks:
            return
        try:
            with _transaction(self._db):
                self._db.executemany("INSERT OR IGNORE INTO open_tracks (id, seq, payload) VALUES (?, ?, ?)",
                                     [(t.id, t.seq, t.event.encode()) for t in tracks])
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            log.error("spool: disk full, cannot take over the %d open track(s) of the lost spool", len(tracks))
            return
        log.warning("spool: %s is not the spool the mark was written with; %d track(s) it held open are taken "
                    "from the mark, to be ended", self.path, len(tracks),
                    extra={"spool": str(self.path), "tracks": [t.id for t in tracks]})

    def _continue_numbering(self, mark: SeqMark | None, lineage: str | None) -> None:
        """Take the numbering on from the mark where this spool is not the one it was written with; reserve."""
        spool_next = self._next_seq
        if mark is not None and lineage != mark.stream:
            if mark.above > self._next_seq:
                log.warning("spool: %s is new or was replaced; seq continues at %d, above every seq issued before",
                            self.path, mark.above, extra={"spool": str(self.path), "seq": mark.above})
            self._next_seq = max(self._next_seq, mark.above)
        self._reserve(self._next_seq + SEQ_BLOCK)  # first: a crash before the spool notes the lineage only widens a gap
        if lineage == self.stream and spool_next == self._next_seq:
            return
        try:
            with _transaction(self._db):
                self._db.execute("DELETE FROM stream")
                self._db.execute("INSERT INTO stream (id) VALUES (?)", (self.stream,))
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (self._next_seq,))
        except sqlite3.OperationalError as exc:  # a full disk must not stop the start; the next start jumps a gap
            if not _is_full(exc):
                raise
            log.warning("spool: disk full, cannot note the stream in %s yet", self.path)

    def _reserve(self, above: int) -> None:
        """Write the mark. A failure (a full disk: the rename needs a free block, which dropping spooled events
        does not give back) is logged once and retried at the next append; events are still stored meanwhile,
        since the spool's own counter is exact: only a spool lost before the mark is written again could then
        reuse numbers above the old mark."""
        mark = SeqMark(self.stream, above, tuple(self._open.values()))
        try:
            mark.write(self.mark_path)
        except OSError as exc:
            if not self._mark_failing:
                log.error("spool: cannot write the sequence mark %s (%s); retrying with the next events",
                          self.mark_path, exc, extra={"mark": str(self.mark_path)})
            self._mark_failing = True
            return
        if self._mark_failing:
            log.warning("spool: the sequence mark %s is written again", self.mark_path)
        self._mark, self._mark_failing = mark, False

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    @property
    def stats(self) -> SpoolStats:
        return SpoolStats(self._depth, self._bytes, self._dropped, self._next_seq)

    def append(self, builders: Sequence[Callable[[int], bytes]],
               tracks: Sequence[TrackMark | None] | None = None) -> list[tuple[int, bytes]]:
        """Give each builder the next sequence number, store what it returns; one transaction (one fsync) for all.

        `tracks`, parallel to `builders`: the open track each event belongs to (its payload becomes the track's last
        event, or the track is closed), in the same transaction. On a full disk, drops the oldest events to make
        room and tries once more; raises sqlite3.Error if the events still cannot be stored (nothing is changed
        then).
        """
        marks = list(tracks) if tracks is not None else [None] * len(builders)
        if len(marks) != len(builders):
            raise ValueError(f"append: {len(marks)} track marks for {len(builders)} events")
        try:
            return self._append(builders, marks)
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            self.release_log()
            if not self._make_room(len(builders)):  # as many as come: a ring at the disk's capacity
                raise
        return self._append(builders, marks)

    def open_tracks(self) -> list[bytes]:
        """The last event's payload of every track still open (oldest event first): tracks a killed run left open."""
        return [bytes(payload) for payload, in self._db.execute("SELECT payload FROM open_tracks ORDER BY seq")]

    def release_log(self) -> None:
        """Best effort on a full disk: copy the write-ahead log into the file and truncate it, giving its space
        back (fails quietly where the file would have to grow and cannot)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _make_room(self, count: int) -> int:
        """Drop the `count` oldest events (the size bound's policy, reached early by a full disk); how many."""
        with _transaction(self._db):
            rows = self._db.execute("SELECT seq, size FROM events ORDER BY seq LIMIT ?", (count,)).fetchall()
            if not rows:
                return 0
            self._db.execute("DELETE FROM events WHERE seq <= ?", (rows[-1][0],))
            self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (len(rows),))
        self._depth -= len(rows)
        self._bytes -= sum(size for _, size in rows)
        self._dropped += len(rows)
        log.warning("spool: disk full, dropped the %d oldest event(s) to make room", len(rows),
                    extra={"spool": str(self.path), "dropped": len(rows), "up_to_seq": rows[-1][0]})
        return len(rows)

    def _append(self, builders: Sequence[Callable[[int], bytes]],
                marks: Sequence[TrackMark | None]) -> list[tuple[int, bytes]]:
        if not builders:
            return []
        rows = [(self._next_seq + i, builder(self._next_seq + i)) for i, builder in enumerate(builders)]
        if rows[-1][0] >= self._mark.above:  # before the rows commit: the mark stays above every seq stored
            self._reserve(rows[-1][0] + 1 + SEQ_BLOCK)
        added = sum(len(payload) for _, payload in rows)
        with _transaction(self._db):  # the rows, the counter and the open tracks commit together or not at all
            self._db.executemany("INSERT INTO events (seq, payload, size) VALUES (?, ?, ?)",
                                 [(seq, payload, len(payload)) for seq, payload in rows])
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (rows[-1][0] + 1,))
            for (seq, payload), mark in zip(rows, marks):
                if mark is not None and mark.ends:
                    self._db.execute("DELETE FROM open_tracks WHERE id = ?", (mark.id,))
                elif mark is not None:
                    self._db.execute("INSERT OR REPLACE INTO open_tracks (id, seq, payload) VALUES (?, ?, ?)",
                                     (mark.id, seq, payload))
            dropped, freed = self._trim(self._bytes + added)
        self._next_seq = rows[-1][0] + 1
        self._depth += len(rows) - dropped
        self._bytes += added - freed
        self._dropped += dropped
        if self._note_open_tracks(rows, marks):  # a track opened or ended: the mark says so (after the commit)
            self._reserve(max(self._mark.above, self._next_seq + SEQ_BLOCK))
        return rows

    def _note_open_tracks(self, rows: Sequence[tuple[int, bytes]], marks: Sequence[TrackMark | None]) -> bool:
        """Follow the committed `open_tracks` in memory; True when the set of open tracks changed."""
        changed = False
        for (seq, payload), mark in zip(rows, marks):
            if mark is None:
                continue
            if mark.ends:
                changed |= self._open.pop(mark.id, None) is not None
            else:
                changed |= mark.id not in self._open
                self._open[mark.id] = OpenTrack(mark.id, seq, payload.decode())
        return changed

    def _trim(self, total: int) -> tuple[int, int]:
        """Inside the caller's transaction: drop the oldest events until `total` fits; (events, bytes) dropped."""
        if total <= self.max_bytes:
            return 0, 0
        excess, dropped, freed, last = total - self.max_bytes, 0, 0, 0
        for seq, size in self._db.execute("SELECT seq, size FROM events ORDER BY seq"):
            if freed >= excess:
                break
            dropped, freed, last = dropped + 1, freed + size, seq
        self._db.execute("DELETE FROM events WHERE seq <= ?", (last,))
        self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,))
        log.warning("spool full: dropped the %d oldest event(s)", dropped,
                    extra={"spool": str(self.path), "dropped": dropped, "up_to_seq": last, "max_bytes": self.max_bytes})
        return dropped, freed

    def peek(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` spooled events with seq > `after_seq`, oldest first."""
        return [(seq, bytes(payload)) for seq, payload in self._db.execute(
            "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))]

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged events; unknown ones (already dropped) are ignored. Returns how many were deleted."""
        wanted = sorted(set(seqs))
        deleted = 0
        # One transaction per chunk: on a nearly full disk a smaller write-ahead log still fits, and every
        # chunk deleted is progress (deleting twice is harmless, so a later retry of the whole list is safe).
        for start in range(0, len(wanted), ACK_CHUNK):
            chunk = wanted[start:start + ACK_CHUNK]
            marks = ",".join("?" * len(chunk))
            with _releasing_log_when_full(self), _transaction(self._db):  # rolled back, then the log released
                count, size = self._db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events WHERE seq IN ({marks})", chunk).fetchone()
                self._db.execute(f"DELETE FROM events WHERE seq IN ({marks})", chunk)
            self._depth -= count
            self._bytes -= size
            deleted += count
        return deleted

    def close(self) -> None:
        self._db.close()


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the connection is in autocommit mode otherwise."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        # SQLite rolls back by itself after some errors (SQLITE_FULL, SQLITE_IOERR); a second ROLLBACK would
        # raise "no transaction is active" and hide the cause.
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def _releasing_log_when_full(spool: Spool) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if _is_full(exc):
            spool.release_log()
        raise


def _is_full(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL: the disk (or SQLite's max_page_count) is full."""
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc)


def _open(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _connect(path)
    except sqlite3.DatabaseError as exc:
        if "not a database" not in str(exc) and "malformed" not in str(exc):
            raise SpoolError(f"mqtt.spool_path: cannot open {path} ({exc})") from None
        # A corrupt spool must not keep a headless sensor from starting: keep it for inspection, start afresh.
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        log.error("spool %s was corrupt (%s); moved it to %s and started an empty one", path, exc, aside,
                  extra={"spool": str(path), "moved_to": str(aside)})
        return _connect(path)
    except OSError as exc:
        raise SpoolError(f"mqtt.spool_path: cannot create {path} ({exc.strerror}); "
                         "point it at a writable directory (the service's StateDirectory)") from None


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # isolation_level=None: transactions are opened explicitly (_transaction), never implicitly.
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.OperationalError as exc:
        raise SpoolError(f"mqtt.spool_path: cannot open {path} ({exc}); "
                         "point it at a writable directory (the service's StateDirectory)") from None
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise SpoolError(f"mqtt.spool_path: {path} cannot use SQLite's WAL mode (got {mode}); use a local file system")
    db.execute("PRAGMA synchronous = FULL")
    # A small write-ahead log: checkpointed every WAL_PAGES pages and cut back to WAL_BYTES afterwards. By
    # default it grows to 4 MB before a checkpoint, and on a full disk a log that large can hold all the free
    # space, so that neither a delete (which writes to the log) nor a checkpoint (which grows the file) succeeds.
    db.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
    db.execute(f"PRAGMA journal_size_limit = {WAL_BYTES}")
    db.executescript(SCHEMA)
    return db
