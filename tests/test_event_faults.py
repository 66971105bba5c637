"""A Frigate-style consumer over a fault run of the real daemon: broker restarts, SIGKILLs, then a clean stop.

The consumer does what Frigate's Home Assistant integration does with Frigate's events: it keys tracked objects by
`after.id`, opens one on `new`, follows it on `update` and closes it on `end`, reading `after.end_time`. It drops
duplicates (at-least-once delivery) the way the Home Assistant event entity does, by ignoring any message whose
`seq` is not above the last one it kept. Everything it cannot make sense of is an error.

The daemon is `emotion-edge run` in a subprocess on a looped face clip (a face appears and leaves every ~0.4 s),
killed with SIGKILL while the spool holds an open track: with the broker up, with it down, and while starting
(right after it spooled the `end`s of the tracks the run before left open). A run stops cleanly, the spool file
is corrupted, and a last run starts on it (moves it aside) and stops cleanly too.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers.mosquitto import Mosquitto
from helpers.mqtt_support import spawn_run, validator, write_face_video, write_run_config
from helpers.peers import free_port, require_binary, require_module, wait_until
from test_mqtt_broker import DEVICE, TOPICS, listen

from emotion_edge.device.mqtt.listen import subscriptions
from emotion_edge.device.mqtt.spool import SEQ_BLOCK

pytestmark = pytest.mark.peer

require_module("jsonschema")
require_module("skimage")  # the face video

TIMEOUT = 60.0  # each wait returns as soon as it can; a model load on a loaded 2-core machine takes seconds


@dataclass
class FrigateStyleConsumer:
    """Open tracked objects by id, from new/update/end messages with before/after; `errors` says what did not fit."""

    open: dict[str, dict] = field(default_factory=dict)  # id -> the last `after`
    ended: dict[str, dict] = field(default_factory=dict)  # id -> the `end` event
    started: list[str] = field(default_factory=list)
    kept: list[dict] = field(default_factory=list)
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    _last_seq: dict[str, int] = field(default_factory=dict)  # stream -> the last seq kept

    def handle(self, event: dict) -> None:
        stream, seq = event["stream"], event["seq"]
        if seq <= self._last_seq.get(stream, 0):
            self.duplicates += 1
            return
        self._last_seq[stream] = seq
        self.kept.append(event)
        try:
            self._apply(event)
        except (KeyError, TypeError) as exc:
            self.errors.append(f"seq {seq}: malformed event ({exc!r})")

    def _apply(self, event: dict) -> None:
        after, kind, seq = event["after"], event["type"], event["seq"]
        track = after["id"]
        if track != event["id"] or (event["before"] is not None and event["before"]["id"] != track):
            self.errors.append(f"seq {seq}: ids disagree")
        if kind == "new":
            if track in self.open or track in self.ended:
                self.errors.append(f"seq {seq}: `new` for a known id {track}")
            self.started.append(track)
            self.open[track] = after
        elif kind in ("update", "end"):
            if track not in self.open:
                self.errors.append(f"seq {seq}: `{kind}` for {track}, which is not open")
            elif event["before"] != self.open[track]:
                self.errors.append(f"seq {seq}: `before` is not the last `after` of {track}")
            if kind == "update":
                self.open[track] = after
            else:
                self.open.pop(track, None)
                self.ended[track] = event
                if not after.get("end_time"):
                    self.errors.append(f"seq {seq}: `end` of {track} without after.end_time")
        else:
            self.errors.append(f"seq {seq}: unknown type {kind!r}")




def _spool(path: Path, query: str) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return db.execute(query).fetchone()[0]
        except sqlite3.OperationalError:  # not created yet, or busy
            return 0


def _open_tracks(spool: Path) -> int:
    return _spool(spool, "SELECT COUNT(*) FROM open_tracks")


def _open_ids(spool: Path) -> set[str]:
    with sqlite3.connect(f"file:{spool}?mode=ro", uri=True) as db:
        return {track for track, in db.execute("SELECT id FROM open_tracks")}


def _spooled(spool: Path) -> int:
    return _spool(spool, "SELECT COUNT(*) FROM events")


def _kill_with_a_track_open(process: subprocess.Popen, spool: Path) -> None:
    """SIGKILL while the spool says a track is open, so the next start has one to end."""
    try:
        wait_until(lambda: _open_tracks(spool) > 0, "a track open in the spool", timeout=TIMEOUT)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_a_frigate_style_consumer_sees_every_track_end_over_broker_restarts_and_sigkills(tmp_path):
    mosquitto = require_binary("mosquitto", "mosquitto")
    video = write_face_video(tmp_path / "faces.avi")
    port, spool = free_port(), tmp_path / "state" / "spool.db"
    config = write_run_config(tmp_path / "config.toml", DEVICE, port, spool, video, refresh_s=0.2, discovery=False)
    with Mosquitto(mosquitto, tmp_path / "broker", port, persistence=True) as broker:
        inbox = listen(port, subscriptions(TOPICS.prefix), client_id="frigate-like", persistent=True)

        def count(kind: str = "", reason: str = "") -> int:
            """Distinct events (duplicates by seq counted once) of a type and reason."""
            distinct = {e["seq"]: e for e in inbox.events()}.values()
            return sum(1 for e in distinct if kind in ("", e["type"]) and reason in ("", e["reason"]))

        # 1. A run with a broker restart in the middle, then SIGKILL with a track open.
        first = spawn_run(config, tmp_path / "first.log")
        try:
            inbox.wait(lambda i: count("end") >= 2, "the first run's events", timeout=TIMEOUT)
            broker.stop()
            wait_until(lambda: _spooled(spool) >= 3, "events spooled while the broker is away", timeout=TIMEOUT)
            broker.start()
            seen = count()
            inbox.wait(lambda i: count() > seen + 3, "events after the broker restart", timeout=TIMEOUT)
        finally:
            _kill_with_a_track_open(first, spool)
        # 2. The next run ends the killed run's tracks first; then SIGKILL while the broker is away.
        second = spawn_run(config, tmp_path / "second.log")
        try:
            inbox.wait(lambda i: count("end", "crashed") >= 1 and count() > seen + 10,
                       "the killed run's tracks ended and new events", timeout=TIMEOUT)
            broker.stop()
            wait_until(lambda: _spooled(spool) >= 3, "events spooled while the broker is away", timeout=TIMEOUT)
        finally:
            _kill_with_a_track_open(second, spool)
        broker.start()
        # 3. Killed again as soon as it has spooled the `end`s of the second run's open tracks (while it starts).
        left_open = _open_ids(spool)
        third = spawn_run(config, tmp_path / "third.log")
        try:
            wait_until(lambda: not _open_ids(spool) & left_open, "the third run to end the second's tracks",
                       timeout=TIMEOUT)
        finally:
            third.send_signal(signal.SIGKILL)
            third.wait()
        # 4. A run delivers what the others spooled and their crashed ends, and stops cleanly (SIGTERM).
        seen = count()
        before_corruption = _run_and_stop(config, tmp_path / "fourth.log", inbox, spool,
                                          lambda: count("end", "crashed") >= 2 and count() > seen + 10)
        # 5. The spool file is found corrupt at the next start (moved aside): seq goes on above every seq sent.
        spool.write_bytes(b"not a database" * 1000)
        seen = count()
        last_seq = _run_and_stop(config, tmp_path / "fifth.log", inbox, spool,
                                 lambda: count() > seen + 4)
        inbox.listener.close()

    consumer = FrigateStyleConsumer()
    check = validator("event")
    for event in inbox.events():  # in arrival order, duplicates included
        check.validate(event)
        consumer.handle(event)
    assert consumer.errors == []
    assert consumer.open == {}, f"tracks never ended: {sorted(consumer.open)}"
    assert sorted(consumer.ended) == sorted(consumer.started) and len(consumer.started) >= 5
    kept = [e["seq"] for e in consumer.kept]
    distinct = {e["seq"] for e in inbox.events()}
    # Dropping by "seq not above the last kept" dropped only duplicates, never a new event, and nothing is missing:
    # every seq up to the corruption, then a jump (at most one reserved block) and every seq after it.
    assert kept == sorted(distinct)
    resumed = kept.index(min(seq for seq in kept if seq > before_corruption))
    assert kept[:resumed] == list(range(1, before_corruption + 1))
    assert kept[resumed:] == list(range(kept[resumed], last_seq + 1))
    assert before_corruption < kept[resumed] <= before_corruption + 1 + SEQ_BLOCK
    assert len({e["stream"] for e in inbox.events()}) == 1
    # The kills left tracks open; the next starts ended them, each exactly once, at its last known state.
    crashed = [e for e in consumer.ended.values() if e["reason"] == "crashed"]
    assert len(crashed) >= 2
    for end in crashed:
        assert end["after"]["end_time"] == end["time"] and end["before"]["id"] == end["id"]
    assert _spooled(spool) == 0 and _open_tracks(spool) == 0 and list(spool.parent.glob("spool.db.corrupt-*"))
    print(f"fault run: {len(distinct)} events, {consumer.duplicates} duplicates dropped, "
          f"{len(consumer.started)} tracks, {len(crashed)} ended as crashed")
    assert json.loads(spool.with_name("spool.db.seq").read_text())["above"] > last_seq


def _run_and_stop(config: Path, log: Path, inbox, spool: Path, until) -> int:
    """Run the daemon until `until()`, stop it with SIGTERM (systemctl stop), wait until the consumer has every
    event it issued; the last seq."""
    process = spawn_run(config, log)
    try:
        inbox.wait(lambda i: until(), f"the events of {log.stem}", timeout=TIMEOUT)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0, log.read_text()[-2000:]
    last_seq = _spool(spool, "SELECT value FROM meta WHERE key = 'next_seq'") - 1
    inbox.wait(lambda i: i.payloads("availability")[-1:] == ["stopped"]
               and max(e["seq"] for e in i.events()) == last_seq, f"every event up to seq {last_seq}",
               timeout=TIMEOUT)
    return last_seq
