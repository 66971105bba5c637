"""Readings to events (new / update / end, before/after, min interval, refresh), the spool, and the [mqtt] config."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.mqtt_support import LABELS, MODEL_SHA, face, reading, validator
from helpers.peers import require_module

from emotion_edge.device.config import parse_config
from emotion_edge.device.config.schema import ConfigError
from emotion_edge.device.mqtt.config import MqttConfig, Topics, read_password
from emotion_edge.device.mqtt.events import EventBuilder, interrupted_end, iso_utc, new_event_id
from emotion_edge.device.mqtt.spool import SEQ_BLOCK, SeqMark, Spool, TrackMark

require_module("jsonschema")  # payloads are validated against device/schemas


def builder(**kwargs) -> EventBuilder:
    # A fixed clock pair: wall = monotonic + 1_700_000_000, so capture times convert exactly.
    return EventBuilder(LABELS, wall_clock=lambda: 1_700_000_100.0, monotonic_clock=lambda: 100.0, **kwargs)


def _lose_spool(path: Path, loss: str) -> None:
    """The spool file corrupted in place, or deleted with its SQLite side files; its `.seq` mark stays."""
    if loss == "corrupt":
        path.write_bytes(b"\x00garbage, not a database" * 500)
        return
    for leftover in path.parent.glob(path.name + "*"):
        if leftover.name != path.name + ".seq":
            leftover.unlink()


def test_a_face_appearing_changing_and_leaving_gives_new_update_end_chained_by_before_after():
    events = builder(min_interval_s=0.0)
    out = events.observe(reading(0, 10.0, (face(1, "happy", is_new=True),)))
    out += events.observe(reading(1, 10.1, (face(1, "happy"),)))  # no change: nothing
    out += events.observe(reading(2, 10.2, (face(1, "sad"),)))
    out += events.observe(reading(3, 10.3, (), ended=(1,)))
    assert [(e.type, e.reason) for e in out] == [("new", "appeared"), ("update", "emotion_changed"), ("end", "left")]
    assert out[0].before is None
    assert out[-1].after.emotion == "sad"  # `end` keeps the track's last reading (Frigate's shape), not None
    assert out[1].before == out[0].after and out[2].before == out[1].after
    assert out[1].after.emotion == "sad" and out[1].before.emotion == "happy"
    assert [e.frame_index for e in out] == [0, 2, 3]
    assert out[1].track_age_s == pytest.approx(0.2)
    # The capture time in wall-clock terms: 90 s before "now" on both clocks.
    assert out[0].captured_wall == pytest.approx(1_700_000_010.0)
    assert iso_utc(out[0].captured_wall) == "2023-11-14T22:13:30.000Z"


def test_changes_inside_the_min_interval_are_held_then_published_if_they_still_hold():
    events = builder(min_interval_s=1.0)
    assert [e.type for e in events.observe(reading(0, 0.0, (face(1, "happy", is_new=True),)))] == ["new"]
    assert events.observe(reading(1, 0.5, (face(1, "sad"),))) == []  # held: 0.5 s after the last event
    assert events.observe(reading(2, 0.9, (face(1, "angry"),))) == []
    late = events.observe(reading(3, 1.0, (face(1, "angry"),)))
    assert [(e.reason, e.before.emotion, e.after.emotion) for e in late] == [("emotion_changed", "happy", "angry")]
    # A change that reverts inside the window is never published.
    assert events.observe(reading(4, 1.5, (face(1, "sad"),))) == []
    assert events.observe(reading(5, 2.5, (face(1, "angry"),))) == []


def test_a_held_change_is_published_before_its_track_ends():
    events = builder(min_interval_s=10.0)
    events.observe(reading(0, 0.0, (face(1, "happy", is_new=True),)))
    events.observe(reading(1, 0.1, (face(1, "fear"),)))
    out = events.observe(reading(2, 0.2, (), ended=(1,)))
    assert [(e.type, e.after.emotion) for e in out] == [("update", "fear"), ("end", "fear")]
    assert out[1].before.emotion == "fear"


def test_refresh_updates_come_at_their_interval_and_never_per_frame():
    events = builder(min_interval_s=0.0, refresh_s=1.0)
    events.observe(reading(0, 0.0, (face(1, "happy", is_new=True),)))
    frames = [events.observe(reading(i, i * 0.1, (face(1, "happy", 0.7 + i * 0.001),))) for i in range(1, 31)]
    refreshes = [e for out in frames for e in out]
    assert [e.reason for e in refreshes] == ["refresh"] * 3  # at 1.0, 2.0 and 3.0 s
    assert [e.frame_index for e in refreshes] == [10, 20, 30]


def test_without_refresh_a_steady_face_gives_no_updates():
    events = builder(min_interval_s=0.0)
    events.observe(reading(0, 0.0, (face(1, "happy", is_new=True),)))
    assert all(events.observe(reading(i, i * 0.1, (face(1, "happy"),))) == [] for i in range(1, 50))


def test_finish_ends_every_open_track_as_a_shutdown():
    events = builder()
    events.observe(reading(7, 1.0, (face(1, "happy", is_new=True), face(2, "sad", is_new=True))))
    out = events.finish()
    assert [(e.type, e.reason, e.track_id, e.frame_index) for e in out] == [("end", "shutdown", 1, 7), ("end", "shutdown", 2, 7)]
    assert events.open_tracks == () and events.finish() == []


def test_a_face_seen_first_without_is_new_still_starts_with_new():
    events = builder()
    assert [e.type for e in events.observe(reading(0, 0.0, (face(3, "happy"),)))] == ["new"]


def test_payloads_follow_the_documented_event_schema():
    check = validator("event")
    events = builder(min_interval_s=0.0)
    out = events.observe(reading(0, 0.0, (face(1, "happy", is_new=True),)))
    out += events.observe(reading(1, 0.1, (face(1, "surprise", box=(-0.02, 0.1, 0.5, 0.5)),)))
    out += events.observe(reading(2, 0.2, (), ended=(1,)))
    payloads = [e.to_payload(seq, "0123456789ab", "hall", MODEL_SHA, LABELS) for seq, e in enumerate(out, 1)]
    for payload in payloads:
        check.validate(json.loads(json.dumps(payload)))
    assert payloads[1]["after"]["probabilities"]["surprise"] == 0.8 and len(payloads[1]["after"]["probabilities"]) == 7
    assert payloads[1]["after"]["box"] == {"x": -0.02, "y": 0.1, "w": 0.5, "h": 0.5}
    # `end` carries `after`, the last reading, with the time the track ended; no other event has an end_time.
    end = payloads[2]
    assert end["type"] == "end" and end["after"]["emotion"] == "surprise" and end["after"]["end_time"] == end["time"]
    assert end["before"] == payloads[1]["after"] and "end_time" not in payloads[1]["after"]
    # The schema is not a rubber stamp: a wrong shape is rejected.
    assert not check.is_valid(dict(end, after=None))  # `end` without an `after`
    assert not check.is_valid(dict(end, after=payloads[1]["after"]))  # `end` whose `after` has no end_time
    assert not check.is_valid(dict(payloads[1], after=end["after"]))  # an `update` with an end_time
    assert not check.is_valid(dict(payloads[0], seq=0))
    assert not check.is_valid({k: v for k, v in payloads[0].items() if k != "model_sha256"})
    assert not check.is_valid({k: v for k, v in payloads[0].items() if k != "id"})
    assert not check.is_valid(dict(payloads[0], previous="happy"))  # a `new` has nothing before it
    assert not check.is_valid(dict(payloads[0], after={k: v for k, v in payloads[0]["after"].items() if k != "id"}))


def test_a_track_has_one_frigate_style_id_at_the_top_and_in_before_and_after_unique_across_runs():
    def run() -> list:
        events = EventBuilder(LABELS, min_interval_s=0.0, wall_clock=lambda: 1_700_000_100.0,
                              monotonic_clock=lambda: 100.0)
        out = events.observe(reading(0, 10.0, (face(1, "happy", is_new=True), face(2, "sad", is_new=True))))
        out += events.observe(reading(1, 10.5, (face(1, "angry"), face(2, "sad"))))
        out += events.observe(reading(2, 11.0, (), ended=(1, 2)))
        return [e.to_payload(seq, "0123456789ab", "hall", MODEL_SHA, LABELS) for seq, e in enumerate(out, 1)]

    first, second = run(), run()  # two processes: the same track numbers, the same start times
    ids = {p["track_id"]: p["id"] for p in first if p["type"] == "new"}
    assert len(set(ids.values())) == 2
    for payload in first:
        assert payload["id"] == ids[payload["track_id"]] == payload["after"]["id"]
        assert payload["before"] is None or payload["before"]["id"] == payload["id"]
        assert payload["after"]["start_time"] == "2023-11-14T22:13:30.000Z"  # when the track appeared
    assert first[0]["id"].startswith("1700000010.000000-") and len(first[0]["id"].split("-")[1]) == 6
    assert not {p["id"] for p in first} & {p["id"] for p in second}  # same track_id, same time: still distinct
    assert len({new_event_id(1.0) for _ in range(1000)}) == 1000


def test_every_event_says_what_changed_at_the_top_level_for_home_assistant():
    events = builder(min_interval_s=0.0, refresh_s=1.0)
    out = events.observe(reading(0, 0.0, (face(1, "happy", 0.7, is_new=True),)))
    out += events.observe(reading(1, 1.0, (face(1, "happy", 0.75),)))  # unchanged: a refresh
    out += events.observe(reading(2, 1.2, (face(1, "sad", 0.9),)))
    out += events.observe(reading(3, 1.4, (), ended=(1,)))
    payloads = [e.to_payload(seq, "0123456789ab", "hall", MODEL_SHA, LABELS) for seq, e in enumerate(out, 1)]
    top = [(p["type"], p["reason"], p["previous"], p["emotion"], p["confidence"]) for p in payloads]
    assert top == [("new", "appeared", None, "happy", 0.7), ("update", "refresh", "happy", "happy", 0.75),
                   ("update", "emotion_changed", "happy", "sad", 0.9), ("end", "left", "sad", "sad", 0.9)]
    for payload in payloads:
        validator("event").validate(payload)
        assert payload["previous"] == (payload["before"] or {}).get("emotion")
        assert (payload["emotion"], payload["confidence"]) == (payload["after"]["emotion"],
                                                               payload["after"]["confidence"])


def test_the_end_of_a_track_a_killed_run_left_open_is_its_last_known_state():
    events = builder(min_interval_s=0.0)
    out = events.observe(reading(0, 10.0, (face(1, "happy", is_new=True),)))
    out += events.observe(reading(5, 12.0, (face(1, "sad"),)))
    last = out[-1].to_payload(2, "0123456789ab", "hall", MODEL_SHA, LABELS)
    end = {**interrupted_end(last), "seq": 9, "stream": "0123456789ab"}
    validator("event").validate(end)
    assert (end["type"], end["reason"], end["id"], end["track_id"]) == ("end", "crashed", last["id"], 1)
    assert end["before"] == last["after"]  # the chain holds
    assert end["after"] == {**last["after"], "end_time": last["time"]}  # the last moment it was known in view
    assert (end["time"], end["frame"], end["previous"], end["emotion"]) == (last["time"], 5, "sad", "sad")


# --- the spool ---

def _builders(*texts: str):
    return [lambda seq, t=t: json.dumps({"seq": seq, "text": t}).encode() for t in texts]


def test_spool_numbers_events_and_keeps_numbering_across_reopen_even_when_empty(tmp_path):
    path = tmp_path / "spool.db"
    spool = Spool(path, max_bytes=1 << 20)
    rows = spool.append(_builders("a", "b", "c"))
    assert [seq for seq, _ in rows] == [1, 2, 3] and json.loads(rows[1][1])["seq"] == 2
    assert spool.ack([1, 2, 3]) == 3 and spool.stats.depth == 0
    spool.close()
    spool = Spool(path, max_bytes=1 << 20)
    assert [seq for seq, _ in spool.append(_builders("d"))] == [4]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert spool._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: a commit survives a power cut


def test_spool_peeks_in_order_after_a_seq_and_ignores_unknown_acks(tmp_path):
    spool = Spool(tmp_path / "s.db", max_bytes=1 << 20)
    spool.append(_builders(*"abcdef"))
    assert [seq for seq, _ in spool.peek(0, 3)] == [1, 2, 3]
    assert [seq for seq, _ in spool.peek(4, 10)] == [5, 6]
    assert spool.ack([2, 99]) == 1
    assert [seq for seq, _ in spool.peek(0, 10)] == [1, 3, 4, 5, 6]
    assert spool.stats.depth == 5 and spool.stats.bytes == sum(len(p) for _, p in spool.peek(0, 10))


def test_spool_drops_the_oldest_beyond_its_bound_and_counts_them_persistently(tmp_path, caplog):
    path = tmp_path / "s.db"
    spool = Spool(path, max_bytes=64 * 1024)
    payload = "x" * 1000
    spool.append(_builders(*[payload] * 100))  # ~101 KB into 64 KiB
    stats = spool.stats
    assert stats.bytes <= 64 * 1024 and stats.dropped == 100 - stats.depth > 0
    remaining = [seq for seq, _ in spool.peek(0, 1000)]
    assert remaining == list(range(stats.dropped + 1, 101))  # the newest survive, in order
    assert "spool full: dropped" in caplog.text
    spool.close()
    assert Spool(path, max_bytes=64 * 1024).stats.dropped == stats.dropped


def test_spool_keeps_what_a_killed_process_appended(tmp_path):
    """An append has committed (and synced) when it returns: a process killed right after loses nothing."""
    path = tmp_path / "s.db"
    code = (
        "import json, os, sys\n"
        "from emotion_edge.device.mqtt.spool import Spool\n"
        f"spool = Spool(__import__('pathlib').Path({str(path)!r}), 1 << 20)\n"
        "spool.append([lambda seq: json.dumps({'seq': seq}).encode() for _ in range(5)])\n"
        "os._exit(0)  # no close, no checkpoint, like SIGKILL\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    spool = Spool(path, max_bytes=1 << 20)
    assert [seq for seq, _ in spool.peek(0, 10)] == [1, 2, 3, 4, 5]


def test_a_corrupt_spool_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    spool = Spool(path, max_bytes=1 << 20)
    assert [seq for seq, _ in spool.append(_builders("a"))] == [1]
    assert list(tmp_path.glob("s.db.corrupt-*")) and "was corrupt" in caplog.text


def _seqs(rows) -> list[int]:
    return [seq for seq, _ in rows]


@pytest.mark.parametrize("loss", ["corrupt", "deleted"])
def test_seq_never_goes_back_when_the_spool_is_lost_and_the_stream_stays(tmp_path, loss):
    path = tmp_path / "s.db"
    spool = Spool(path, max_bytes=1 << 20)
    stream = spool.stream
    issued = _seqs(spool.append(_builders(*"abc")))
    spool.close()
    spool = Spool(path, max_bytes=1 << 20)  # a plain restart: no gap
    issued += _seqs(spool.append(_builders("d")))
    assert issued == [1, 2, 3, 4] and spool.stream == stream
    spool.close()
    _lose_spool(path, loss)
    spool = Spool(path, max_bytes=1 << 20)
    after = _seqs(spool.append(_builders("e", "f")))
    assert after[0] > max(issued) and after[1] == after[0] + 1 and after[0] <= max(issued) + 1 + SEQ_BLOCK
    assert spool.stream == stream  # the same numbering: dropping duplicates by seq stays safe
    spool.close()
    spool = Spool(path, max_bytes=1 << 20)  # and the new spool restarts without another jump
    assert _seqs(spool.append(_builders("g"))) == [after[1] + 1]


def test_the_mark_is_reserved_ahead_and_moved_before_seqs_pass_it(tmp_path):
    path = tmp_path / "s.db"
    spool = Spool(path, max_bytes=1 << 30)
    assert SeqMark.read(SeqMark.path_for(path)) == SeqMark(spool.stream, 1 + SEQ_BLOCK)
    rows = spool.append(_builders(*["x"] * (SEQ_BLOCK + 5)))
    assert SeqMark.read(SeqMark.path_for(path)).above > rows[-1][0]


def test_a_lost_mark_keeps_the_spools_stream_and_only_losing_both_starts_a_new_one(tmp_path, caplog):
    path = tmp_path / "s.db"
    spool = Spool(path, max_bytes=1 << 20)
    stream = spool.stream
    spool.append(_builders("a", "b"))
    spool.close()
    SeqMark.path_for(path).write_text("{not json")
    spool = Spool(path, max_bytes=1 << 20)
    assert spool.stream == stream and _seqs(spool.append(_builders("c"))) == [3]
    assert "sequence mark" in caplog.text and "unreadable" in caplog.text
    assert SeqMark.read(SeqMark.path_for(path)) == SeqMark(stream, 3 + SEQ_BLOCK)  # rewritten at the start
    spool.close()
    for leftover in tmp_path.iterdir():  # a wiped state directory
        leftover.unlink()
    spool = Spool(path, max_bytes=1 << 20)
    assert spool.stream != stream and _seqs(spool.append(_builders("d"))) == [1]


def test_a_mark_that_cannot_be_written_is_logged_once_and_events_are_still_stored(tmp_path, caplog):
    path = tmp_path / "s.db"
    SeqMark.path_for(path).mkdir()  # the rename onto it fails, as on a full disk
    spool = Spool(path, max_bytes=1 << 30)
    rows = spool.append(_builders(*["x"] * (SEQ_BLOCK + 5)))
    rows += spool.append(_builders("y"))
    assert _seqs(rows) == list(range(1, SEQ_BLOCK + 7))
    assert caplog.text.count("cannot write the sequence mark") == 1
    SeqMark.path_for(path).rmdir()
    spool.append(_builders(*["z"] * SEQ_BLOCK))  # the next reservation succeeds and says so
    assert "is written again" in caplog.text
    assert SeqMark.read(SeqMark.path_for(path)).above > spool.stats.next_seq - 1


def test_the_spool_keeps_each_open_tracks_last_event_with_its_events(tmp_path):
    path = tmp_path / "s.db"
    spool = Spool(path, max_bytes=1 << 20)
    spool.append(_builders("a-new", "b-new"), [TrackMark("a", False), TrackMark("b", False)])
    spool.append(_builders("a-update", "stats"), [TrackMark("a", False), None])
    spool.append(_builders("b-end"), [TrackMark("b", True)])
    assert [json.loads(p)["text"] for p in spool.open_tracks()] == ["a-update"]
    with pytest.raises(ValueError, match="1 track marks for 2 events"):
        spool.append(_builders("x", "y"), [None])
    spool.close()
    assert [json.loads(p)["text"] for p in Spool(path, max_bytes=1 << 20).open_tracks()] == ["a-update"]


def test_an_unwritable_spool_path_names_the_setting(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="mqtt.spool_path: cannot create"):
        Spool(blocker / "sub" / "spool.db", max_bytes=1 << 20)


# --- config ---

def test_mqtt_config_parses_nested_tables_and_derives_ids():
    config = parse_config('device_id = "hall"\n[mqtt]\nenabled = true\nhost = "broker"\nport = 8883\n'
                          '[mqtt.tls]\nenabled = true\nca_file = "/etc/ca.pem"\n'
                          '[mqtt.homeassistant]\ndiscovery_prefix = "ha"\n')
    assert config.mqtt.enabled and config.mqtt.port == 8883 and config.mqtt.tls.ca_file == Path("/etc/ca.pem")
    assert config.mqtt.homeassistant.discovery_prefix == "ha" and config.mqtt.homeassistant.enabled
    assert Topics.for_device("hall").events == "emotion-edge/hall/events"
    assert Topics.for_device("hall", "site/a").availability == "site/a/availability"


@pytest.mark.parametrize("text, message", [
    ("[mqtt]\nprot = 1\n", "cfg.mqtt: unknown key(s) prot"),
    ("[mqtt]\nport = 0\n", "cfg.mqtt: field 'port' must be 1-65535"),
    ("[mqtt]\nqos = 0\n", "cfg.mqtt: field 'qos' must be 1 or 2"),
    ("[mqtt]\nport = '1883'\n", "cfg.mqtt.port: expected int"),
    ("[mqtt]\ntopic_prefix = 'a/#'\n", "field 'topic_prefix' must be a topic without"),
    ("[mqtt]\npassword_env = 'X'\n", "needs field 'username'"),
    ("[mqtt]\nusername = 'u'\npassword_env = 'X'\npassword_file = '/p'\n", "exclude each other"),
    ("[mqtt]\nreconnect_min_s = 5.0\nreconnect_max_s = 1.0\n", "field 'reconnect_max_s'"),
    ("[mqtt]\nspool_max_bytes = 10\n", "field 'spool_max_bytes' must be at least"),
    ("[mqtt.tls]\ncertfile = '/c.pem'\n", "cfg.mqtt.tls: fields 'certfile' and 'keyfile' go together"),
    ("[mqtt.homeassistant]\ndiscovery_prefix = ''\n", "cfg.mqtt.homeassistant: field 'discovery_prefix'"),
])
def test_bad_mqtt_settings_are_named(text, message):
    with pytest.raises(ConfigError) as err:
        parse_config(text, "cfg")
    assert message in str(err.value)


def test_password_comes_from_a_file_or_the_environment_and_errors_never_show_it(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("s3cret-value\n")
    assert read_password(MqttConfig(username="u", password_file=secret)) == "s3cret-value"
    monkeypatch.setenv("EE_TEST_PW", "env-s3cret")
    assert read_password(MqttConfig(username="u", password_env="EE_TEST_PW")) == "env-s3cret"
    with pytest.raises(ValueError, match="mqtt.password_env: environment variable EE_MISSING is not set"):
        read_password(MqttConfig(username="u", password_env="EE_MISSING"))
    with pytest.raises(ValueError, match="mqtt.password_file: cannot read"):
        read_password(MqttConfig(username="u", password_file=tmp_path / "absent"))


def test_the_password_is_not_in_the_connection_repr(tmp_path):
    from emotion_edge.device.mqtt.connection import BrokerConnection

    secret = tmp_path / "pw"
    secret.write_text("s3cret-value")
    connection = BrokerConnection.from_config(MqttConfig(username="u", password_file=secret))
    assert connection.password == "s3cret-value" and "s3cret" not in repr(connection)


def test_device_ids_that_cannot_be_topic_levels_are_refused():
    with pytest.raises(ValueError, match="cannot be a topic level"):
        Topics.for_device("a/b")



def test_the_readme_event_example_follows_the_schema():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("\n## MQTT\n"):]
    example = section[section.index("```json\n") + 8: section.index("\n```", section.index("```json\n"))]
    validator("event").validate(json.loads(example))


# --- tracks a killed run left open ---

def _delivery(path: Path):
    import logging

    from emotion_edge.device.mqtt.delivery import Delivery
    from emotion_edge.device.mqtt.inbox import PublisherCounters

    delivery = Delivery(path, 1 << 20, 10, "hall", LABELS, PublisherCounters(), logging.getLogger("test"))
    delivery.open()
    return delivery


def test_the_next_start_ends_the_tracks_a_killed_run_left_open_before_any_new_event(tmp_path, caplog):
    path = tmp_path / "spool.db"
    events = builder(min_interval_s=0.0)
    first = _delivery(path)
    first.add(events.observe(reading(0, 1.0, (face(1, "happy", is_new=True), face(2, "sad", is_new=True)))), MODEL_SHA)
    first.add(events.observe(reading(1, 1.5, (face(1, "angry"),), ended=(2,))), MODEL_SHA)
    first.spool_pending()
    first.spool._db.close()  # killed: no clean stop, no `finish`
    second = _delivery(path)
    assert "the last run stopped without ending 1 track(s)" in caplog.text
    second.add(builder().observe(reading(0, 5.0, (face(1, "fear", is_new=True),))), MODEL_SHA)
    second.spool_pending()
    payloads = [json.loads(p) for _, p in second.spool.peek(0, 100)]
    assert [(p["type"], p["reason"]) for p in payloads] == [
        ("new", "appeared"), ("new", "appeared"), ("end", "left"), ("update", "emotion_changed"),
        ("end", "crashed"), ("new", "appeared")]
    crashed, last = payloads[4], payloads[3]
    assert crashed["id"] == last["id"] and crashed["before"] == last["after"] and crashed["seq"] == 5
    assert crashed["after"]["end_time"] == last["time"] and crashed["stream"] == second.spool.stream
    assert [json.loads(p)["id"] for p in second.spool.open_tracks()] == [payloads[5]["id"]]  # only the new run's
    for payload in payloads:
        validator("event").validate(payload)
    second.close()
    assert _delivery(path).unspooled[0].track.id == payloads[5]["id"]  # ended once only: the next start ends the newest


@pytest.mark.parametrize("loss", ["corrupt", "deleted"])
def test_tracks_open_in_a_lost_spool_still_end_at_the_next_start_from_the_mark(tmp_path, caplog, loss):
    """The mark beside the spool carries the open tracks (rewritten when one opens or ends, not per event)."""
    path = tmp_path / "spool.db"
    events = builder(min_interval_s=0.0)
    first = _delivery(path)
    first.add(events.observe(reading(0, 1.0, (face(1, "happy", is_new=True), face(2, "sad", is_new=True)))), MODEL_SHA)
    first.spool_pending()
    first.add(events.observe(reading(1, 1.5, (face(1, "angry"),), ended=(2,))), MODEL_SHA)  # 2 ends: mark rewritten
    first.spool_pending()
    first.add(events.observe(reading(2, 2.0, (face(1, "fear"),))), MODEL_SHA)  # an update only: the mark stays
    first.spool_pending()
    sent = [json.loads(p) for _, p in first.spool.peek(0, 100)]
    assert [(p["type"], p["track_id"]) for p in sent] == [("new", 1), ("new", 2), ("end", 2), ("update", 1),
                                                           ("update", 1)]
    first.spool._db.close()  # killed with track 1 open
    _lose_spool(path, loss)
    second = _delivery(path)
    assert [p.track.id for p in second.unspooled] == [sent[0]["id"]]
    assert "track(s) it held open are taken from the mark" in caplog.text
    second.add(builder().observe(reading(0, 5.0, (face(1, "fear", is_new=True),))), MODEL_SHA)
    second.spool_pending()
    payloads = [json.loads(p) for _, p in second.spool.peek(0, 100)]
    assert [(p["type"], p["reason"]) for p in payloads] == [("end", "crashed"), ("new", "appeared")]
    crashed = payloads[0]
    assert crashed["id"] == sent[0]["id"] and crashed["seq"] > sent[-1]["seq"]
    # Its state when the mark was last written (track 2 ending), not the later update's.
    assert crashed["before"] == sent[3]["after"] != sent[4]["after"]
    validator("event").validate(crashed)
    second.close()
    assert [p.track.id for p in _delivery(path).unspooled] == [payloads[1]["id"]]  # ended once only
