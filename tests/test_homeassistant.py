"""A real Home Assistant (2025.4, headless on loopback) with its MQTT integration on the test mosquitto, and the
real daemon on a face video: what a user's Home Assistant shows is checked through its own APIs.

The entities expected are derived from discovery_messages() itself, so an entity added there is checked here
(created on the device, available, unavailable on stop, back on start) without touching this file. Home Assistant's
own schemas judge every discovery config (tests/home_assistant/validate_discovery.py runs in its venv). The venv is
installed once per lock and cached outside the clone (tests/helpers/homeassistant.py); pytest's summary says what
the install cost.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from helpers.homeassistant import (
    HomeAssistant,
    Websocket,
    ensure_venv,
    home_assistant_python,
    validate_discovery,
)
from helpers.mosquitto import Mosquitto
from helpers.mqtt_support import LABELS, RunningDaemon, write_face_video
from helpers.peers import SUMMARY, free_port, require_binary, require_module, wait_until

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig, ServiceConfig
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.mqtt.config import HomeAssistantConfig, MqttConfig, Topics
from emotion_edge.device.mqtt.ha_discovery import discovery_messages, node_id
from emotion_edge.device.tracking import TrackerConfig

pytestmark = [pytest.mark.peer, pytest.mark.slow]

require_module("skimage")  # the face video
require_module("websocket")  # websocket-client, which selenium brings

DEVICE = "ha-cam"
TOPICS = Topics.for_device(DEVICE)
DISCOVERY = HomeAssistantConfig()
TIMEOUT = 60.0  # Home Assistant and the daemon share a loaded 2-core CI machine; every wait returns when it can
GONE = ("unavailable", "unknown")
# A value the device reports as unknown where the machine has none: CPU temperature on a kernel without a thermal
# zone (CI's machine) is null in the stats, which Home Assistant shows as `unknown`.
MAY_BE_UNKNOWN = ("_cpu_temperature",)


@pytest.fixture(scope="module")
def ha_venv(request):
    venv = ensure_venv(home_assistant_python())
    request.config.stash.setdefault(SUMMARY, []).append(venv.describe())
    return venv


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with Mosquitto(require_binary("mosquitto", "mosquitto"), tmp_path_factory.mktemp("ha-broker"), free_port()) as b:
        yield b


@pytest.fixture(scope="module")
def home_assistant(request, ha_venv, broker, tmp_path_factory):
    with HomeAssistant(ha_venv, tmp_path_factory.mktemp("ha-config"), free_port()) as ha:
        ha.add_mqtt(broker.port)
        request.config.stash.setdefault(SUMMARY, []).append(
            f"Home Assistant started and onboarded in {ha.start_s:.1f} s on {ha.url}")
        yield ha


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    return write_face_video(tmp_path_factory.mktemp("ha-video") / "faces.avi")


def daemon_config(video: Path, broker_port: int, spool: Path, loop: bool = True) -> DaemonConfig:
    mqtt_config = MqttConfig(enabled=True, host="127.0.0.1", port=broker_port, spool_path=spool,
                             update_min_interval_s=0.0, state_min_interval_s=0.1, stats_interval_s=0.5,
                             reconnect_min_s=0.1, reconnect_max_s=0.5, shutdown_flush_s=3.0, homeassistant=DISCOVERY)
    # 10 fps: a face comes and goes about once a second, slow enough to watch, fast enough for a short test.
    return DaemonConfig(device_id=DEVICE, camera=CameraConfig(source=str(video), loop=loop, fps=10.0),
                        model=ModelConfig(path=packaged_model_path(), threads=1),
                        tracker=TrackerConfig(max_missed=1), mqtt=mqtt_config,
                        # the detection switch and the retained-topic record live beside the spool, per test
                        service=ServiceConfig(status_file=spool.parent / "status.json", state_dir=spool.parent))




class Subscriber:
    """A plain paho subscriber on the device's topics: what the broker delivered, in order, as raw bytes."""

    def __init__(self, port: int):
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._received
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{TOPICS.prefix}/#", qos=1)
        self.client.loop_start()

    def _received(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def last(self, topic: str) -> bytes | None:
        with self._lock:
            return next((payload for t, payload in reversed(self.messages) if t == topic), None)

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload in self.messages if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def expected_entities() -> dict[str, tuple[str, dict[str, Any]]]:
    """unique_id -> (component, config) for every entity the daemon announces."""
    return {config["unique_id"]: (topic.split("/")[1], config)
            for topic, config in discovery_messages(DISCOVERY, TOPICS, DEVICE, LABELS)}


def device_and_entities(ws: Websocket) -> tuple[dict, dict[str, str]] | None:
    """The device from Home Assistant's registry with every expected entity on it (unique_id -> entity_id)."""
    identifier = ["mqtt", f"emotion_edge_{node_id(DEVICE)}"]
    device = next((d for d in ws.command("config/device_registry/list") if identifier in d["identifiers"]), None)
    if device is None:
        return None
    entities = {e["unique_id"]: e["entity_id"] for e in ws.command("config/entity_registry/list")
                if e["device_id"] == device["id"]}
    return (device, entities) if set(entities) >= set(expected_entities()) else None


def live(state: dict[str, Any], unique: str) -> bool:
    """Available with a value (or an honest `unknown` where the machine has no such value)."""
    return state["state"] != "unavailable" and (state["state"] != "unknown" or unique.endswith(MAY_BE_UNKNOWN))


def all_live(ha: HomeAssistant, entity_ids: dict[str, str]) -> bool:
    now = states(ha, entity_ids)
    return len(now) == len(entity_ids) and all(live(s, u) for u, s in now.items())


def states(ha: HomeAssistant, entity_ids: dict[str, str]) -> dict[str, dict]:
    """unique_id -> the entity's state object, from the REST API."""
    by_id = {s["entity_id"]: s for s in ha.get("/api/states")}
    return {unique: by_id[entity] for unique, entity in entity_ids.items() if entity in by_id}


def shown_value(ha: HomeAssistant, component: str, config: dict[str, Any], payload: bytes) -> str | None:
    """What Home Assistant should show for `payload` on the entity's state topic: its template rendered by Home
    Assistant itself (/api/template). None for components whose state is not a rendering of the payload."""
    if component not in ("sensor", "binary_sensor") or "value_template" not in config:
        return None
    text = payload.decode()
    try:
        value_json = json.loads(text)
    except ValueError:
        value_json = None
    rendered = ha.post_text("/api/template", {"template": config["value_template"],
                                              "variables": {"value": text, "value_json": value_json}})
    if rendered == "None":  # Home Assistant's MQTT entities take a rendered "None" as no value: `unknown`
        return "unknown"
    if component == "binary_sensor":
        return {config.get("payload_on", "ON"): "on", config.get("payload_off", "OFF"): "off"}.get(rendered)
    return rendered


def same(shown: str, expected: str) -> bool:
    try:
        return float(shown) == pytest.approx(float(expected), abs=1e-6)
    except ValueError:
        return shown == expected


def assert_last_values_are_the_last_payloads(ha: HomeAssistant, ws: Websocket, entity_ids: dict[str, str],
                                             subscriber: Subscriber) -> None:
    """Nothing stale: the last value each entity showed before it went unavailable is what its template makes of
    the last payload the broker delivered on its topic; the event entity's last firing is the last event."""
    for unique, (component, config) in expected_entities().items():
        history = [s["state"] for s in ws.changes(entity_ids[unique]) if s is not None]
        assert history[-1] == "unavailable", (unique, history[-5:])
        last_shown = history[-2] if len(history) >= 2 else None
        if component == "event":
            fired = [s for s in ws.changes(entity_ids[unique]) if s and s["state"] not in GONE]
            # Refreshes fire nothing (the template renders them empty), so the last firing is the last other event.
            last_event = [e for e in map(json.loads, subscriber.on(config["state_topic"])) if e["reason"] != "refresh"][-1]
            assert fired and fired[-1]["attributes"]["seq"] == last_event["seq"], (fired[-1:], last_event)
            continue
        payload = subscriber.last(config["state_topic"])
        expected = shown_value(ha, component, config, payload) if payload is not None else None
        if expected is not None:
            assert last_shown is not None and same(last_shown, expected), \
                f"{entity_ids[unique]} last showed {last_shown!r}, the last payload {payload[:200]!r} gives {expected!r}"


def test_home_assistant_accepts_every_discovery_config_and_rejects_what_it_should(ha_venv):
    messages = discovery_messages(DISCOVERY, TOPICS, DEVICE, LABELS)
    # The same check must turn down what Home Assistant turns down, for the reason given (each key is a part of
    # Home Assistant's own message): negative cases, so the check can fail.
    configs = {topic.split("/")[-2]: (topic, config) for topic, config in messages}
    dominant_topic, dominant = configs["dominant_emotion"]
    event_topic, event = configs["emotion_change"]
    fps_topic, fps = configs["fps"]
    bad = {
        "options": (dominant_topic, {**dominant, "state_class": "measurement"}),  # an enum sensor measured
        "event_types": (event_topic, {k: v for k, v in event.items() if k != "event_types"}),  # required
        "invalid template": (fps_topic, {**fps, "value_template": "{{ value_json.fps "}),
        "qos": (fps_topic, {**fps, "qos": 3}),
        "data['name']": (fps_topic, {**fps, "origin": {"sw_version": "1"}}),  # an origin needs a name
        "not a discovery topic": (fps_topic.replace(f"/{node_id(DEVICE)}/", "/ha.cam/"), fps),  # a dot in the node id
        "not one Home Assistant's MQTT integration supports": (fps_topic.replace("/sensor/", "/emotion/"), fps),
    }
    misspelt = (fps_topic, {**fps, "unit_of_measurment": "fps"})
    verdicts = validate_discovery(ha_venv, DISCOVERY.discovery_prefix, [*messages, *bad.values(), misspelt])

    accepted, rejected, ignored = verdicts[:len(messages)], verdicts[len(messages):-1], verdicts[-1]
    assert [v["topic"] for v in accepted] == [topic for topic, _ in messages]
    assert [v for v in accepted if v["error"] or v["ignored"]] == []
    assert {reason: reason in (v["error"] or "") for reason, v in zip(bad, rejected)} == dict.fromkeys(bad, True), \
        rejected
    # Home Assistant drops unknown options without a word; the check names them, so a misspelt option fails.
    assert ignored["error"] is None and ignored["ignored"] == ["unit_of_measurment"]


def test_home_assistant_shows_the_device_live_unavailable_on_stop_and_back_on_start(home_assistant, broker,
                                                                                    face_video, tmp_path):
    ha = home_assistant
    expected = expected_entities()
    ws = Websocket(ha)
    subscriber = Subscriber(broker.port)
    config = daemon_config(face_video, broker.port, tmp_path / "spool.db")
    running = RunningDaemon(config)
    try:
        device, entity_ids = wait_until(lambda: device_and_entities(ws), "the device and all its entities in Home "
                                        "Assistant's registries", TIMEOUT, describe=ha.describe)
        assert device["name"] == f"emotion-edge {DEVICE}" and device["manufacturer"] == "emotion-edge"
        assert set(entity_ids) == set(expected)  # nothing more, nothing less
        for unique, (component, _) in expected.items():
            assert entity_ids[unique].startswith(f"{component}.")

        # Live: every entity available with a value, and the room's face and emotion reach Home Assistant.
        def dominant_history() -> list[str]:
            return [s["state"] for s in ws.changes(entity_ids[dominant]) if s]

        dominant = next(u for u in expected if u.endswith("_dominant_emotion"))
        faces = next(u for u in expected if u.endswith("_faces"))
        event = next(u for u, (component, _) in expected.items() if component == "event")
        wait_until(lambda: all_live(ha, entity_ids), "every entity available with a value", TIMEOUT,
                   describe=lambda: str({u: s["state"] for u, s in states(ha, entity_ids).items()}))
        # A face comes and the room has a dominant emotion, the face goes and it is `none`, again and again.
        wait_until(lambda: any(v in LABELS for v in dominant_history()) and "none" in dominant_history(),
                   "a dominant emotion in Home Assistant, and none", TIMEOUT,
                   describe=lambda: str(dominant_history()[-10:]))
        wait_until(lambda: {s["state"] for s in ws.changes(entity_ids[faces]) if s} >= {"0", "1"},
                   "0 and 1 faces in view", TIMEOUT)
        fired = wait_until(lambda: [s for s in ws.changes(entity_ids[event]) if s and s["state"] not in GONE],
                           "the event entity firing", TIMEOUT)
        assert datetime.fromisoformat(fired[-1]["state"])  # an event entity's state is when it last fired
        assert {s["attributes"]["event_type"] for s in fired} <= set(LABELS) | {"appeared", "left"}
        assert all(isinstance(s["attributes"]["seq"], int) for s in fired)
    finally:
        running.stop()

    # Stopped: every entity unavailable; the values they showed last were the latest the device sent.
    wait_until(lambda: all(s["state"] == "unavailable" for s in states(ha, entity_ids).values()),
               "every entity unavailable after the daemon stopped", TIMEOUT,
               describe=lambda: str({u: s["state"] for u, s in states(ha, entity_ids).items()}))
    assert_last_values_are_the_last_payloads(ha, ws, entity_ids, subscriber)

    # Started again: back, with fresh values, and the same device and entities (no duplicates).
    before = len(ws.state_changes)
    running = RunningDaemon(config)
    try:
        wait_until(lambda: all_live(ha, entity_ids), "every entity back after the daemon started again", TIMEOUT,
                   describe=lambda: str({u: s["state"] for u, s in states(ha, entity_ids).items()}))
        again, entities_again = device_and_entities(ws)
        assert (again["id"], entities_again) == (device["id"], entity_ids)
        wait_until(lambda: any(c["entity_id"] == entity_ids[event] for c in ws.state_changes[before:]
                               if c["new_state"] and c["new_state"]["state"] not in GONE),
                   "the event entity firing after the restart", TIMEOUT)
    finally:
        running.stop()
    wait_until(lambda: all(s["state"] == "unavailable" for s in states(ha, entity_ids).values()),
               "every entity unavailable after the second stop", TIMEOUT)
    assert_last_values_are_the_last_payloads(ha, ws, entity_ids, subscriber)
    subscriber.close()
    ws.close()


def test_a_duplicated_event_delivery_fires_the_event_entity_once(home_assistant, broker, tmp_path):
    ha = home_assistant
    # One face that comes and goes once, then an empty room for half a minute: no event after its `end`.
    video = write_face_video(tmp_path / "once.avi", cycles=1, face_frames=10, empty_frames=300)
    ws = Websocket(ha)
    subscriber = Subscriber(broker.port)
    running = RunningDaemon(daemon_config(video, broker.port, tmp_path / "spool.db", loop=False))
    try:
        _, entity_ids = wait_until(lambda: device_and_entities(ws), "the device in Home Assistant", TIMEOUT)
        event_id = next(entity_ids[u] for u, (component, _) in expected_entities().items() if component == "event")
        ended = wait_until(lambda: [p for p in subscriber.on(TOPICS.events) if json.loads(p)["type"] == "end"],
                           "the face's end event", TIMEOUT)[-1]
        seq = json.loads(ended)["seq"]

        def firings() -> list[dict]:
            return [s for s in ws.changes(event_id) if s and s["state"] not in GONE and s["attributes"]["seq"] == seq]

        wait_until(firings, f"Home Assistant firing for event seq {seq}", TIMEOUT)
        # The broker delivers the same event again, as at-least-once delivery may after a lost PUBACK.
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        publisher.publish(TOPICS.events, ended, qos=1).wait_for_publish(10)
        # A barrier: a state with 97 faces, published after the redelivery by the same client, so Home Assistant
        # (one MQTT connection, messages handled in order) has handled the redelivery once it shows 97.
        faces_id = next(entity_ids[u] for u in entity_ids if u.endswith("_faces"))
        barrier = {**json.loads(subscriber.last(TOPICS.state)), "faces": 97}
        publisher.publish(TOPICS.state, json.dumps(barrier), qos=1).wait_for_publish(10)
        wait_until(lambda: "97" in [s["state"] for s in ws.changes(faces_id) if s], "the barrier state", TIMEOUT)
        publisher.loop_stop()
        publisher.disconnect()
        assert len(firings()) == 1, f"event seq {seq} fired {len(firings())} times: {firings()}"
    finally:
        running.stop()
        subscriber.close()
        ws.close()


def test_the_detection_switch_in_home_assistant_stops_and_resumes_detection(home_assistant, broker, face_video,
                                                                            tmp_path):
    """Privacy mode from Home Assistant: switch.turn_off closes the camera (no frame is processed), the device says
    `paused` and its room entities go unavailable; switch.turn_on brings all of it back."""
    ha = home_assistant
    ws = Websocket(ha)
    running = RunningDaemon(daemon_config(face_video, broker.port, tmp_path / "spool.db"))
    try:
        _, entity_ids = wait_until(lambda: device_and_entities(ws), "the device in Home Assistant", TIMEOUT)
        wait_until(lambda: all_live(ha, entity_ids), "every entity available with a value", TIMEOUT)
        by_suffix = {suffix: next(entity_ids[u] for u in entity_ids if u.endswith(suffix))
                     for suffix in ("_detection", "_sensing", "_dominant_emotion", "_occupancy")}
        switch, sensing = by_suffix["_detection"], by_suffix["_sensing"]
        room = (by_suffix["_dominant_emotion"], by_suffix["_occupancy"])
        assert ha.get(f"/api/states/{switch}")["state"] == "on"

        ha.post("/api/services/switch/turn_off", {"entity_id": switch})
        wait_until(lambda: ha.get(f"/api/states/{switch}")["state"] == "off"
                   and ha.get(f"/api/states/{sensing}")["state"] == "paused"
                   and all(ha.get(f"/api/states/{e}")["state"] == "unavailable" for e in room),
                   "the switch off, the device paused and its room entities unavailable", TIMEOUT,
                   describe=lambda: str({e: ha.get(f"/api/states/{e}")["state"] for e in (switch, sensing, *room)}))
        frames = running.daemon.counters.frames
        time.sleep(1.5)  # 15 frames of the 10 fps video would have been processed by now
        assert running.daemon.counters.frames == frames, "frames were processed while detection was off"

        ha.post("/api/services/switch/turn_on", {"entity_id": switch})
        wait_until(lambda: ha.get(f"/api/states/{switch}")["state"] == "on"
                   and ha.get(f"/api/states/{sensing}")["state"] == "sensing"
                   and all(ha.get(f"/api/states/{e}")["state"] not in GONE for e in room),
                   "the switch on, the device sensing and its room entities back", TIMEOUT,
                   describe=lambda: str({e: ha.get(f"/api/states/{e}")["state"] for e in (switch, sensing, *room)}))
        wait_until(lambda: running.daemon.counters.frames > frames + 5, "frames processed again", TIMEOUT)
    finally:
        running.stop()
        ws.close()


# The page's text, shadow roots included (Home Assistant's frontend is web components all the way down).
DEEP_TEXT = """
const parts = [];
const walk = (node) => {
  if (node.nodeType === Node.TEXT_NODE) { parts.push(node.textContent); return; }
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.childNodes) walk(child);
};
walk(document.documentElement);
return parts.join(' ').replace(/\\s+/g, ' ');
"""
# Whether every icon on the page has been drawn (the frontend loads Material Design icons lazily).
ICONS_DRAWN = """
const icons = [];
const walk = (node) => {
  if (node.localName === 'ha-svg-icon') icons.push(node);
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.children || []) walk(child);
};
walk(document.documentElement);
return icons.length > 0 && icons.every((icon) => icon.path || icon.shadowRoot?.querySelector('path')?.getAttribute('d'));
"""


def test_the_device_page_in_home_assistants_frontend(home_assistant, broker, tmp_path):
    """The device as a user sees it in Home Assistant, in headless Chromium; the README shows the screenshot."""
    require_module("selenium")
    from helpers.browser import chromium

    ha = home_assistant
    ws = Websocket(ha)
    # A face that stays in view (the clip loops), so the page shows an emotion rather than an empty room.
    video = write_face_video(tmp_path / "staying.avi", cycles=1, face_frames=30, empty_frames=0)
    running = RunningDaemon(daemon_config(video, broker.port, tmp_path / "spool.db"))
    browser = None
    try:
        device, entity_ids = wait_until(lambda: device_and_entities(ws), "the device in Home Assistant", TIMEOUT)
        wait_until(lambda: all_live(ha, entity_ids), "every entity available with a value", TIMEOUT)
        browser = chromium(window=(1280, 1900), loopback_only=True)
        # Logged in as the onboarding user: the frontend reads its tokens from localStorage, as after a login.
        browser.get(f"{ha.url}/api/onboarding")
        tokens = {**ha.tokens, "hassUrl": ha.url, "clientId": f"{ha.url}/"}
        browser.execute_script("const t = arguments[0]; t.expires = Date.now() + t.expires_in * 1000;"
                               "localStorage.setItem('hassTokens', JSON.stringify(t));", tokens)
        browser.get(f"{ha.url}/config/devices/device/{device['id']}")
        # The page is done when it names the device, its integration and maker, and every entity (by its name
        # without the device's), none unavailable; the frontend fills these in as its data arrives.
        names = [s["attributes"]["friendly_name"].removeprefix(device["name"]).strip()
                 for s in states(ha, entity_ids).values()]
        wanted = [device["name"], "MQTT", "by emotion-edge", *names]

        def missing() -> list[str]:
            text = browser.execute_script(DEEP_TEXT)
            return [w for w in wanted if w not in text] + (["(an entity is Unavailable)"] if "Unavailable" in text
                                                           else [])

        wait_until(lambda: not missing(), "the device page with every entity live", TIMEOUT,
                   describe=lambda: f"missing: {missing()}")
        wait_until(lambda: browser.execute_script(ICONS_DRAWN), "the page's icons drawn", TIMEOUT)
        screenshot = tmp_path / "homeassistant-device.png"
        assert browser.save_screenshot(str(screenshot))
    finally:
        if browser is not None:
            browser.quit()
        running.stop()
        ws.close()
