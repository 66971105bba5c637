"""MQTT publishing against a real mosquitto on a free loopback port: schema, availability, outages, restarts, TLS, auth, HA.

Never a mocked broker: what is promised (the will, retained availability, QoS 1
acknowledgements, in-order redelivery after a restart) is a broker's behaviour.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import paho.mqtt.publish as paho_publish
import pytest
from helpers.mosquitto import Mosquitto, make_test_pki
from helpers.mqtt_support import (
    LABELS,
    MODEL_SHA,
    RunningDaemon,
    face,
    reading,
    spawn_run,
    validator,
    write_face_video,
    write_run_config,
)
from helpers.peers import free_port, require_binary, require_module, wait_until

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig, ServiceConfig
from emotion_edge.device.daemon.control import DetectionSwitch
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.mqtt.config import HomeAssistantConfig, MqttConfig, MqttTlsConfig, Topics
from emotion_edge.device.mqtt.connection import BrokerConnection
from emotion_edge.device.mqtt.ha_discovery import discovery_messages
from emotion_edge.device.mqtt.listen import Listener, Received, subscriptions
from emotion_edge.device.mqtt.publisher import MqttPublisher
from emotion_edge.device.tracking import TrackerConfig

pytestmark = pytest.mark.peer

require_module("jsonschema")  # payloads are validated against device/schemas
require_module("skimage")  # the face video

DEVICE = "test-cam"
TOPICS = Topics.for_device(DEVICE)
TIMEOUT = 20.0  # generous for a loaded 2-core CI machine; every wait below returns as soon as it can


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    return write_face_video(tmp_path_factory.mktemp("mqtt-video") / "faces.avi")


@pytest.fixture
def mosquitto_binary() -> str:
    return require_binary("mosquitto", "mosquitto")


@pytest.fixture
def broker(mosquitto_binary, tmp_path):
    with Mosquitto(mosquitto_binary, tmp_path / "broker", free_port()) as running:
        yield running


def connection(port: int, **kwargs) -> BrokerConnection:
    return BrokerConnection("127.0.0.1", port, reconnect_min_s=0.1, reconnect_max_s=0.5, **kwargs)


class Inbox:
    """Everything a Listener received, in arrival order, with waits that return as soon as a condition holds."""

    def __init__(self, listener: Listener):
        self.listener = listener
        self.received: list[Received] = []

    def _pull(self, timeout: float) -> None:
        try:
            self.received.append(self.listener.messages.get(timeout=timeout))
        except queue.Empty:
            return
        while not self.listener.messages.empty():
            self.received.append(self.listener.messages.get_nowait())

    def wait(self, condition: Callable[[Inbox], bool], what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; received: "
                                     f"{[(m.topic, str(m.payload)[:80]) for m in self.received][-10:]}")
            self._pull(min(remaining, 0.2))

    def payloads(self, kind: str) -> list:
        return [m.payload for m in self.received if m.kind == kind]

    def events(self) -> list[dict]:
        return self.payloads("events")


def listen(port: int, topics: list[str] | None = None, **kwargs) -> Inbox:
    kwargs.setdefault("connection", connection(port))
    listener = Listener(kwargs.pop("connection"), topics or subscriptions(TOPICS.prefix), **kwargs).start()
    return Inbox(listener)


def mqtt_config(port: int, tmp_path: Path, **overrides) -> MqttConfig:
    settings = dict(enabled=True, host="127.0.0.1", port=port, spool_path=tmp_path / "spool.db",
                    update_min_interval_s=0.0, update_refresh_s=0.1, state_min_interval_s=0.1, stats_interval_s=0.3,
                    reconnect_min_s=0.1, reconnect_max_s=0.5, shutdown_flush_s=3.0)
    return MqttConfig(**{**settings, **overrides})


def daemon_config(video: Path, mqtt: MqttConfig) -> DaemonConfig:
    # fps paces the looped clip like a camera (and spares the shared CPU); max_missed = 1 ends a track
    # within the clip's empty frames, so every cycle gives `new` and `end` events.
    # The spool's folder (the test's) also holds the daemon's state files, never /var/lib/emotion-edge.
    return DaemonConfig(device_id=DEVICE, camera=CameraConfig(source=str(video), loop=True, fps=30.0),
                        model=ModelConfig(path=packaged_model_path(), threads=1),
                        tracker=TrackerConfig(max_missed=1), mqtt=mqtt,
                        service=ServiceConfig(state_dir=mqtt.spool_path.parent))




def first_occurrences(events: list[dict]) -> list[dict]:
    """Events with duplicates (at-least-once redelivery) removed; duplicates must be byte-identical."""
    seen: dict[int, dict] = {}
    ordered = []
    for event in events:
        if event["seq"] in seen:
            assert seen[event["seq"]] == event, "a redelivered event differs from the first delivery"
            continue
        seen[event["seq"]] = event
        ordered.append(event)
    return ordered


def test_events_state_stats_and_availability_arrive_as_documented(broker, face_video, tmp_path):
    inbox = listen(broker.port, subscriptions(TOPICS.prefix) + ["homeassistant/#"])
    running = RunningDaemon(daemon_config(face_video, mqtt_config(broker.port, tmp_path)))
    try:
        inbox.wait(lambda i: any(e["type"] == "end" for e in i.events()) and len(i.events()) >= 6
                   and i.payloads("stats") and i.payloads("state"), "events of every type, state and stats")
        assert running.daemon.live.snapshot().mqtt == "connected"
        assert running.daemon.live.snapshot().last_event["seq"] >= 1
    finally:
        running.stop()
    inbox.wait(lambda i: i.payloads("availability")[-1:] == ["stopped"], "availability 'stopped'")

    check_event, check_state, check_stats = validator("event"), validator("state"), validator("stats")
    events = inbox.events()
    for event in events:
        check_event.validate(event)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # no broker trouble: no duplicates either
    assert {e["type"] for e in events} == {"new", "update", "end"}
    by_track: dict[int, list[dict]] = {}
    for event in events:
        by_track.setdefault(event["track_id"], []).append(event)
    for track_events in by_track.values():
        assert track_events[0]["type"] == "new"
        # Every track ends: by leaving the view, or, open at the clean stop, with the shutdown.
        assert (track_events[-1]["type"], track_events[-1]["reason"]) in (("end", "left"), ("end", "shutdown"))
        for previous, current in zip(track_events, track_events[1:]):
            assert current["before"] == previous["after"]  # a subscriber can chain a track's events
        # `end` keeps `after` (Frigate's shape): the track's last reading, with the time it ended.
        assert track_events[-1]["after"]["end_time"] == track_events[-1]["time"]
    assert all(e["model_sha256"] == running.daemon.classifier.sha256 for e in events)
    for state in inbox.payloads("state"):
        check_state.validate(state)
    for stats in inbox.payloads("stats"):
        check_stats.validate(stats)
    assert inbox.payloads("stats")[-1]["spool"]["dropped"] == 0
    availability = inbox.payloads("availability")
    assert availability[0] == "online" and availability[-1] == "stopped"
    # Retained: a subscriber arriving later learns the device stopped cleanly and the last room state.
    late = listen(broker.port)
    late.wait(lambda i: i.payloads("availability") and i.payloads("state"), "retained availability and state")
    assert late.payloads("availability") == ["stopped"] and all(m.retained for m in late.received)
    late.listener.close()
    inbox.listener.close()


def test_home_assistant_discovery_validates_renders_and_is_resent_when_ha_restarts(broker, tmp_path):
    jinja2 = require_module("jinja2")
    inbox = listen(broker.port, subscriptions(TOPICS.prefix) + ["homeassistant/#"])
    # The daemon's stats carry these; a stand-in source keeps this test free of the camera loop.
    stats = {"fps": 12.5, "uptime_s": 61.04, "cpu_temp_c": None, "model_version": MODEL_SHA[:12],
             "dropped_frames": 3, "spool": {"depth": 2, "dropped": 0}}
    publisher = MqttPublisher(mqtt_config(broker.port, tmp_path), DEVICE, LABELS, lambda: MODEL_SHA,
                              stats_source=lambda: stats, switch=DetectionSwitch(),
                              configuration_url="http://pi.local:8080/").start()
    entities = 14 + len(LABELS)
    try:
        inbox.wait(lambda i: len([m for m in i.received if m.topic.startswith("homeassistant/")]) >= entities,
                   "discovery")
        publisher.handle_reading(reading(0, time.monotonic(), (face(1, "happy", is_new=True),)))
        publisher.handle_reading(reading(1, time.monotonic(), (face(1, "sad"),)))
        publisher.handle_reading(reading(2, time.monotonic(), (), ended=(1,)))
        publisher.handle_reading(reading(3, time.monotonic(), (face(2, "sad", is_new=True),)))
        publisher.handle_reading(reading(4, time.monotonic() + 0.2, (face(2, "sad"),)))  # a refresh (0.1 s)
        inbox.wait(lambda i: len(i.events()) >= 5 and i.payloads("state")[-1:] and i.payloads("state")[-1]["faces"] == 1
                   and i.payloads("stats"), "events, the room with face 2, stats")
        configs = {m.topic: m.payload for m in inbox.received if m.topic.startswith("homeassistant/")}
        # Home Assistant says it restarted: the configs come again.
        before = len([m for m in inbox.received if m.topic.startswith("homeassistant/")])
        paho_publish.single("homeassistant/status", "online", qos=1, hostname="127.0.0.1", port=broker.port)
        inbox.wait(lambda i: len([m for m in i.received if m.topic.startswith("homeassistant/")])
                   >= before + entities,
                   "discovery re-sent after homeassistant/status online")
    finally:
        publisher.close()
        inbox.listener.close()

    assert sorted(t.split("/")[1] + "/" + t.split("/")[3] for t in configs) == sorted([
        "event/emotion_change", "sensor/dominant_emotion", "sensor/faces", "binary_sensor/occupancy",
        *(f"sensor/share_{label}" for label in LABELS),
        "binary_sensor/camera_problem", "sensor/sensing", "switch/detection", "sensor/fps", "sensor/uptime",
        "sensor/cpu_temperature", "sensor/model_version", "sensor/dropped_frames", "sensor/spool_depth",
        "sensor/dropped_events"])
    env = jinja2.Environment()
    shares: dict[str, float] = {}
    latest = {"state": inbox.payloads("state")[-1], "stats": inbox.payloads("stats")[-1],
              "sensing": inbox.payloads("sensing")[-1], "detection": inbox.payloads("detection")[-1]}
    # No camera loop here: the readings fed in are what the device sees, so it is sensing.
    assert latest["sensing"] == "sensing" and latest["detection"] == "ON"
    room = {"dominant_emotion", "faces", "occupancy", "emotion_change", *(f"share_{label}" for label in LABELS)}
    rendered_values = {}
    for topic, config in configs.items():
        object_id = topic.split("/")[3]
        assert config["qos"] == 1  # Home Assistant subscribes at QoS 1: at-least-once reaches it, not only the broker
        assert config["device"]["configuration_url"] == "http://pi.local:8080/"
        assert topic == f"homeassistant/{topic.split('/')[1]}/test-cam/{object_id}/config"
        assert "state_class" not in config or "options" not in config  # Home Assistant refuses both on one sensor
        # Every entity follows the connection; the room entities also need the device to be sensing.
        avail = [(a["topic"], env.from_string(a["value_template"])) for a in config["availability"]]
        assert avail[0][0] == TOPICS.availability
        assert [avail[0][1].render(value=v) for v in ("online", "offline", "stopped")] == ["online", "offline", "offline"]
        if object_id in room:
            assert config["availability_mode"] == "all" and avail[1][0] == TOPICS.sensing
            assert [avail[1][1].render(value=v) for v in ("starting", "sensing", "camera_down", "paused", "stopped")] \
                == ["offline", "online", "offline", "offline", "offline"]
        else:
            assert len(avail) == 1 and config["entity_category"] in ("diagnostic", "config")
        if topic.startswith("homeassistant/switch/"):
            assert (config["command_topic"], config["state_topic"]) == (TOPICS.detection_set, TOPICS.detection)
            continue
        template = env.from_string(config.get("value_template", "{{ value }}"))
        if topic.startswith("homeassistant/event/"):
            continue  # below
        kind = config["state_topic"].rsplit("/", 1)[1]
        value = template.render(value_json=latest[kind], value=latest[kind])
        rendered_values[object_id] = value
        if "options" in config:
            assert value in config["options"]
        elif object_id.startswith("share_"):
            # Per-emotion shares, graphed by Home Assistant's long-term statistics: % of the faces in view.
            label = object_id.removeprefix("share_")
            assert config["unit_of_measurement"] == "%" and config["state_class"] == "measurement"
            # The delivered states (state_min_interval_s may fold the one-face state into the last, empty one)
            # and a room of three faces, two happy and one sad, as the state topic would carry it.
            three = {**latest["state"], "faces": 3, "dominant": "happy",
                     "counts": {**{k: 0 for k in LABELS}, "happy": 2, "sad": 1}}
            for state in [*inbox.payloads("state"), three]:
                expected = 100 * state["counts"][label] / state["faces"] if state["faces"] else 0
                assert float(template.render(value_json=state)) == pytest.approx(expected, abs=0.05)
            shares[label] = float(template.render(value_json=three))
    assert {k: v for k, v in rendered_values.items() if not k.startswith("share_")} == {
        "dominant_emotion": "sad", "faces": "1", "occupancy": "ON", "camera_problem": "OFF", "sensing": "sensing",
        "fps": "12.5", "uptime": "61.0", "cpu_temperature": "None", "model_version": MODEL_SHA[:12],
        "dropped_frames": "3", "spool_depth": "2", "dropped_events": "0"}
    occupancy = env.from_string(configs["homeassistant/binary_sensor/test-cam/occupancy/config"]["value_template"])
    assert occupancy.render(value_json={**latest["state"], "faces": 0}) == "OFF"
    problem = env.from_string(configs["homeassistant/binary_sensor/test-cam/camera_problem/config"]["value_template"])
    assert [problem.render(value=v) for v in ("camera_down", "paused", "sensing")] == ["ON", "OFF", "OFF"]
    # The event entity, rendered as Home Assistant does: `this` is the entity's state, whose attributes are the
    # last fired event's; an empty rendering fires nothing.
    event_config = configs["homeassistant/event/test-cam/emotion_change/config"]
    template = env.from_string(event_config["value_template"])
    fired, this = [], {"attributes": {"event_types": event_config["event_types"]}}
    delivered = inbox.events()
    for event in [*delivered, delivered[1], delivered[0]]:  # at-least-once: the first two again, as a redelivery
        text = template.render(value_json=event, this=this).strip()
        if text:
            attributes = json.loads(text)
            fired.append(attributes)
            this = {"attributes": {**this["attributes"], **attributes}}
    assert [e["reason"] for e in delivered] == ["appeared", "emotion_changed", "left", "appeared", "refresh"]
    # A face appearing, its change, its leaving, another appearing; the refresh and the duplicates fire nothing.
    assert [(f["event_type"], f["emotion"], f["previous"]) for f in fired] == [
        ("appeared", "happy", None), ("sad", "sad", "happy"), ("left", "sad", "sad"), ("appeared", "sad", None)]
    assert all(f["event_type"] in event_config["event_types"] for f in fired)
    assert [f["seq"] for f in fired] == [1, 2, 3, 4] and fired[1]["confidence"] == pytest.approx(0.8)
    assert all(f["id"] == e["id"] and f["stream"] == e["stream"] for f, e in zip(fired, [*delivered[:3], delivered[3]]))
    # A lower seq of another stream (the device's state was wiped, numbering starts again) is not a duplicate.
    seen = {"attributes": {"seq": 5000, "stream": delivered[0]["stream"]}}
    assert not template.render(value_json={**delivered[0], "seq": 1}, this=seen).strip()
    assert template.render(value_json={**delivered[0], "seq": 1, "stream": "0123456789ab"}, this=seen).strip()
    assert shares == {**{k: 0.0 for k in LABELS}, "happy": 66.7, "sad": 33.3}
    # What crossed the broker is exactly discovery_messages(), which Home Assistant's own schemas judge
    # (tests/test_homeassistant.py runs them in a real Home Assistant's venv).
    assert configs == dict(discovery_messages(HomeAssistantConfig(), TOPICS, DEVICE, LABELS,
                                              configuration_url="http://pi.local:8080/", switch=True,
                                              stats_interval_s=publisher.config.stats_interval_s))


@pytest.mark.parametrize("ha_settings, birth", [
    ({"discovery_prefix": "custom"}, "homeassistant/status"),  # not derived from the discovery prefix
    ({"discovery_prefix": "custom", "birth_topic": "ha-main/birth"}, "ha-main/birth"),
])
def test_home_assistant_birth_topic_is_its_own_setting(broker, tmp_path, ha_settings, birth):
    inbox = listen(broker.port, ["custom/#"])
    config = mqtt_config(broker.port, tmp_path, homeassistant=HomeAssistantConfig(**ha_settings))
    publisher = MqttPublisher(config, DEVICE, LABELS, lambda: MODEL_SHA).start()
    try:
        inbox.wait(lambda i: len(i.received) >= 13 + len(LABELS), "discovery under the custom prefix")
        before = len(inbox.received)
        paho_publish.single(birth, "online", qos=1, hostname="127.0.0.1", port=broker.port)
        inbox.wait(lambda i: len(i.received) >= before + 13 + len(LABELS), f"discovery re-sent after {birth} online")
    finally:
        publisher.close()
        inbox.listener.close()


def test_two_devices_left_on_default_ids_keep_distinct_ids_and_topics_and_never_kick_each_other_off(
        broker, tmp_path, monkeypatch):
    from emotion_edge.device.config import identity

    # Two Pis, both still named "raspberrypi": only /etc/machine-id tells them apart (injected here).
    monkeypatch.setattr("socket.gethostname", lambda: "raspberrypi")
    configs = []
    for name in ("pi-a", "pi-b"):
        machine_id = tmp_path / f"{name}.machine-id"
        machine_id.write_text(("a" if name == "pi-a" else "b") * 32 + "\n")
        monkeypatch.setattr(identity, "MACHINE_ID_FILES", (machine_id,))
        configs.append(DaemonConfig(mqtt=mqtt_config(broker.port, tmp_path / name)))
        again = DaemonConfig()
        assert again.device_id == configs[-1].device_id  # stable: the same machine gives the same id every start
    ids = [c.device_id for c in configs]
    assert ids[0] != ids[1] and all(i.startswith("raspberrypi-") for i in ids), ids
    inbox = listen(broker.port, ["emotion-edge/+/availability"])
    publishers = [MqttPublisher(c.mqtt, c.device_id, LABELS, lambda: MODEL_SHA).start() for c in configs]
    try:
        assert len({p.client_id for p in publishers}) == 2 and all(p.device_id in p.client_id for p in publishers)
        inbox.wait(lambda i: {m.topic for m in i.received if m.payload == "online"}
                   == {f"emotion-edge/{i}/availability" for i in ids}, "both devices online on their own topics")
        time.sleep(2.0)  # with one client id the broker would drop one per connect: several reconnects by now
        assert [p.counters.connects for p in publishers] == [1, 1]
        assert all(p.state_text == "connected" for p in publishers)
    finally:
        for publisher in publishers:
            publisher.close()
        inbox.listener.close()
    # An explicit device_id still wins over the machine's.
    assert DaemonConfig(device_id="hall").device_id == "hall"


def test_a_broker_outage_loses_no_event_and_keeps_order(mosquitto_binary, face_video, tmp_path):
    # Persistence on, and a persistent subscriber session: the broker restart keeps the logger's queue, as on
    # a production broker, so what the device re-sends before the logger reconnects still reaches it.
    # `with`: the broker process ends even when an assertion fails while it is (re)started.
    with Mosquitto(mosquitto_binary, tmp_path / "broker", free_port(), persistence=True) as broker:
        inbox = listen(broker.port, subscriptions(TOPICS.prefix), client_id="test-logger", persistent=True)
        running = RunningDaemon(daemon_config(face_video, mqtt_config(broker.port, tmp_path)))
        try:
            inbox.wait(lambda i: len(i.events()) >= 5, "events before the outage")
            broker.stop()
            spooled = lambda: running.publisher.stats()["spool"]["depth"]  # noqa: E731
            wait_until(lambda: spooled() >= 8, "events spooled during the outage")
            assert running.daemon.counters.frames > 0 and running.publisher.stats()["mqtt"]["state"] != "connected"
            frames_during_outage = running.daemon.counters.frames
            broker.start()
            wait_until(lambda: running.publisher.counters.connects >= 2 and spooled() == 0, "the spool to drain")
            assert running.daemon.counters.frames > frames_during_outage  # the camera loop never stopped
        finally:
            running.stop()
        created = running.publisher.counters.events
        inbox.wait(lambda i: {e["seq"] for e in i.events()} >= set(range(1, created + 1)), f"all {created} events")
        inbox.listener.close()
    delivered = first_occurrences(inbox.events())
    assert [e["seq"] for e in delivered] == list(range(1, created + 1))  # in order, no gap, nothing lost
    assert running.publisher.stats()["spool"] == {"depth": 0, "bytes": 0, "dropped": 0, "pending_dropped": 0}


def test_delivery_resumes_within_a_second_or_so_of_a_broker_back_from_a_long_outage(mosquitto_binary, face_video,
                                                                                    tmp_path):
    # reconnect_min_s = 2 (max the default 60): paho alone tries at 2, 6, 14 s after the broker left, so a broker
    # back after a 7 s outage would wait about 7 s more for the device. The probe brings it back within ~0.5 s.
    outage_s = 7.0
    with Mosquitto(mosquitto_binary, tmp_path / "broker", free_port(), persistence=True) as broker:
        inbox = listen(broker.port, subscriptions(TOPICS.prefix), client_id="test-logger", persistent=True)
        config = mqtt_config(broker.port, tmp_path, reconnect_min_s=2.0, reconnect_max_s=60.0)
        running = RunningDaemon(daemon_config(face_video, config))
        try:
            inbox.wait(lambda i: len(i.events()) >= 3, "events before the outage")
            broker.stop()
            left = time.monotonic()
            wait_until(lambda: running.publisher.stats()["mqtt"]["state"] != "connected", "the device to notice")
            before = running.publisher.stats()["mqtt"]
            time.sleep(outage_s)
            during = running.publisher.stats()["mqtt"]
            seen = len(inbox.events())
            broker.start()
            back = time.monotonic()
            inbox.wait(lambda i: len(i.events()) > seen, "the first event after the broker came back")
            resumed_s = time.monotonic() - back
        finally:
            running.stop()
            inbox.listener.close()
    # Generous for a loaded machine: paho's own backoff would be ~7 s here.
    assert resumed_s < 3.0, f"delivery resumed {resumed_s:.1f} s after the broker came back"
    down_s = back - left
    attempts, probes = during["attempts"] - before["attempts"], during["probes"] - before["probes"]
    # No hammering: a handful of MQTT attempts (paho's doubling) and one bare TCP connect per 0.5 s at most.
    assert attempts <= 4, f"{attempts} connection attempts in a {down_s:.1f} s outage"
    assert probes <= down_s / 0.5 + 2, f"{probes} TCP probes in a {down_s:.1f} s outage"




def _spool_depth(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            return 0


def test_a_killed_daemon_delivers_its_spool_after_restart_its_will_says_offline_and_sigterm_says_stopped(
        mosquitto_binary, face_video, tmp_path):
    port, spool = free_port(), tmp_path / "spool.db"
    config = write_run_config(tmp_path / "config.toml", DEVICE, port, spool, face_video, refresh_s=0.1)
    # 1. No broker: events can only go to the spool. Kill the daemon without warning.
    first = spawn_run(config, tmp_path / "first.log")
    try:
        wait_until(lambda: _spool_depth(spool) >= 5, "events spooled with no broker", timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    undelivered = _spool_depth(spool)
    # 2. The broker is back; a new daemon delivers the old events first, then its own.
    with Mosquitto(mosquitto_binary, tmp_path / "broker", port) as broker:
        inbox = listen(broker.port)
        second = spawn_run(config, tmp_path / "second.log")
        try:
            inbox.wait(lambda i: "online" in i.payloads("availability")
                       and any(e["seq"] > undelivered + 2 for e in i.events()), "spooled and new events", timeout=60)
        finally:
            second.send_signal(signal.SIGKILL)
            second.wait()
        # 3. Killed, not stopped: the broker publishes the last will.
        inbox.wait(lambda i: i.payloads("availability")[-1:] == ["offline"], "the will 'offline'")
        assert "stopped" not in inbox.payloads("availability")
        # 4. `emotion-edge run` stopped by SIGTERM (systemctl stop): open tracks end, the spool drains, `stopped`.
        seen = len(inbox.events())
        before_third = max(e["seq"] for e in inbox.events())
        third = spawn_run(config, tmp_path / "third.log")
        try:
            inbox.wait(lambda i: i.payloads("availability")[-1:] == ["online"] and len(i.events()) > seen + 2,
                       "the third daemon's events", timeout=60)
        finally:
            third.send_signal(signal.SIGTERM)
            assert third.wait(timeout=TIMEOUT) == 0
        inbox.wait(lambda i: i.payloads("availability")[-1:] == ["stopped"], "availability 'stopped'")
        inbox.listener.close()
    delivered = first_occurrences(inbox.events())
    seqs = [e["seq"] for e in delivered]
    assert seqs[:undelivered] == list(range(1, undelivered + 1))  # the killed daemon's spool came first
    assert seqs == list(range(1, len(seqs) + 1))  # in order, no gap
    assert _spool_depth(spool) == 0
    # A clean stop leaves no track open: every face the third daemon saw appear also ended.
    third_events = [e for e in delivered if e["seq"] > before_third]
    assert {e["track_id"] for e in third_events if e["type"] == "new"} <= {
        e["track_id"] for e in third_events if e["type"] == "end"}


def test_tls_with_a_test_ca_client_certificate_and_password(mosquitto_binary, tmp_path, caplog):
    pki = make_test_pki(tmp_path / "pki")
    secret = "tls-s3cret-pw"
    (tmp_path / "pw").write_text(secret + "\n")
    tls = MqttTlsConfig(enabled=True, ca_file=pki.ca_cert, certfile=pki.client_cert, keyfile=pki.client_key)
    caplog.set_level(logging.DEBUG)
    with Mosquitto(mosquitto_binary, tmp_path / "broker", free_port(), users={"device": secret, "reader": "r-pw"},
                   pki=pki, require_client_cert=True) as broker:
        reader = connection(broker.port, tls=tls, username="reader", password="r-pw")
        inbox = listen(broker.port, connection=reader)
        config = mqtt_config(broker.port, tmp_path, host="localhost", tls=tls, username="device",
                             password_file=tmp_path / "pw")
        publisher = MqttPublisher(config, DEVICE, LABELS, lambda: MODEL_SHA).start()
        try:
            publisher.handle_reading(reading(0, time.monotonic(), (face(1, "happy", is_new=True),)))
            inbox.wait(lambda i: i.events() and "online" in i.payloads("availability"), "an event over TLS")
        finally:
            publisher.close()
        # A clean stop ends the open track first, then says `stopped`.
        inbox.wait(lambda i: i.payloads("availability")[-1:] == ["stopped"], "availability 'stopped'")
        inbox.listener.close()
        for event in inbox.events():
            validator("event").validate(event)
        assert [(e["type"], e["reason"]) for e in inbox.events()] == [("new", "appeared"), ("end", "shutdown")]
        arrivals = [(m.kind, m.payload if m.kind == "availability" else None) for m in inbox.received]
        assert arrivals.index(("availability", "stopped")) > max(
            i for i, (kind, _) in enumerate(arrivals) if kind == "events")
        # The certificate is really checked: without the test CA (the system CAs only) the handshake fails.
        untrusted = connection(broker.port, tls=MqttTlsConfig(enabled=True), username="reader", password="r-pw")
        with pytest.raises(ValueError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            Listener(untrusted, [TOPICS.events]).start(timeout=5)
    assert secret not in caplog.text and "r-pw" not in caplog.text


def test_a_wrong_password_is_reported_once_and_the_camera_loop_goes_on(mosquitto_binary, face_video, tmp_path,
                                                                       caplog, monkeypatch):
    monkeypatch.setenv("EE_TEST_MQTT_PASSWORD", "wrong-s3cret")
    caplog.set_level(logging.DEBUG)
    with Mosquitto(mosquitto_binary, tmp_path / "broker", free_port(), users={"device": "right"}) as broker:
        config = mqtt_config(broker.port, tmp_path, username="device", password_env="EE_TEST_MQTT_PASSWORD")
        running = RunningDaemon(daemon_config(face_video, config))
        try:
            wait_until(lambda: running.publisher.counters.refused >= 3, "three refused attempts (retrying)")
            wait_until(lambda: running.publisher.stats()["spool"]["depth"] >= 2, "events kept in the spool")
            frames = running.daemon.counters.frames
            wait_until(lambda: running.daemon.counters.frames > frames + 5, "the camera loop going on")
            state = running.daemon.live.snapshot().mqtt
        finally:
            running.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.endswith("mqtt.publisher")]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once, not per retry
    message = errors[0].getMessage()
    assert "refused the connection: Not authorized" in message and "user 'device'" in message
    assert "mqtt.password_env" in message and state == message.removeprefix("mqtt: ")
    assert "wrong-s3cret" not in caplog.text


def test_a_broker_that_accepts_tcp_but_refuses_the_login_keeps_the_doubling_backoff(mosquitto_binary, tmp_path,
                                                                                      monkeypatch):
    # The reconnect probe ends a wait only when a refusing port starts accepting; a broker that is up but says
    # "not authorized" must still be tried at 0, 0.5, 1.5, 3.5 s (reconnect_min_s = 0.5), not hammered.
    monkeypatch.setenv("EE_TEST_MQTT_PASSWORD", "wrong-s3cret")
    with Mosquitto(mosquitto_binary, tmp_path / "broker", free_port(), users={"device": "right"}) as broker:
        config = mqtt_config(broker.port, tmp_path, username="device", password_env="EE_TEST_MQTT_PASSWORD",
                             reconnect_min_s=0.5, reconnect_max_s=60.0)
        publisher = MqttPublisher(config, DEVICE, LABELS, lambda: MODEL_SHA)
        started = time.monotonic()
        publisher.start()
        try:
            wait_until(lambda: publisher.counters.refused >= 4, "four refused logins")
            elapsed = time.monotonic() - started
        finally:
            publisher.close()
    assert elapsed >= 3.0, f"4 refused logins within {elapsed:.2f} s: the backoff was cut short"


def test_listen_command_prints_one_json_line_per_message(broker, tmp_path):
    command = [sys.executable, "-m", "emotion_edge.main", "listen", "--host", "127.0.0.1", "--port", str(broker.port),
               "--device", DEVICE, "--only", "events", "--count", "2", "--timeout", str(TIMEOUT)]
    listener = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in listener.stderr.readline()
        publisher = MqttPublisher(mqtt_config(broker.port, tmp_path), DEVICE, LABELS, lambda: MODEL_SHA).start()
        publisher.handle_reading(reading(0, time.monotonic(), (face(1, "happy", is_new=True),)))
        publisher.handle_reading(reading(1, time.monotonic(), (), ended=(1,)))
        out, _ = listener.communicate(timeout=TIMEOUT)
        publisher.close()
    finally:
        listener.kill()
    lines = [json.loads(line) for line in out.splitlines()]
    assert listener.returncode == 0
    assert [(m["topic"], m["payload"]["type"]) for m in lines] == [(TOPICS.events, "new"), (TOPICS.events, "end")]


def test_listen_reports_a_refused_login_clearly(mosquitto_binary, tmp_path):
    with Mosquitto(mosquitto_binary, tmp_path / "broker", free_port(), users={"u": "right"}) as secured:
        result = subprocess.run([sys.executable, "-m", "emotion_edge.main", "listen", "--port", str(secured.port),
                                 "--host", "127.0.0.1", "--username", "u", "--password-env", "EE_PW"],
                                capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ, EE_PW="wr0ng-pw"))
    assert result.returncode == 2
    assert "refused the connection: Not authorized (user 'u')" in result.stderr
    assert "wr0ng-pw" not in result.stderr + result.stdout
