"""What Home Assistant and other subscribers read is true at every moment, against a real mosquitto: a fresh room
state at start, sensing that follows the camera, an empty room before `stopped`, the detection switch (privacy
mode) over the broker, and no retained topic left behind by a renamed device, switched-off discovery or `forget`.

Only the camera is faked: a frame source whose frames can be stopped and resumed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.publish as paho_publish
import pytest
from helpers.mosquitto import Mosquitto
from helpers.mqtt_support import LABELS, MODEL_SHA, RunningDaemon, validator
from helpers.peers import free_port, require_binary, require_module
from helpers.photo import astronaut_head
from test_mqtt_broker import TIMEOUT, Inbox, listen, mqtt_config

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig, ServiceConfig
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.mqtt import retained
from emotion_edge.device.mqtt.config import HomeAssistantConfig, Topics
from emotion_edge.device.mqtt.listen import subscriptions
from emotion_edge.device.mqtt.publisher import MqttPublisher
from emotion_edge.device.sources import SourceBase
from emotion_edge.device.statefile import StateFile
from emotion_edge.device.tracking import TrackerConfig
from emotion_edge.main import main

pytestmark = pytest.mark.peer

require_module("jsonschema")
require_module("skimage")

DEVICE = "truth-cam"
TOPICS = Topics.for_device(DEVICE)
ALL = subscriptions(TOPICS.prefix)  # availability, events, state, stats, sensing, detection


class GatedCamera(SourceBase):
    """A camera showing one face at about 15 fps while `delivering` is set, and nothing (a stalled camera) while
    it is clear; counts opens and knows whether it is open, so a test can see the privacy mode close it."""

    name = "gated"

    def __init__(self, delivering: bool = True):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[90:390, 170:470] = cv2.resize(astronaut_head(), (300, 300))
        self.image = canvas
        self.delivering = threading.Event()
        if delivering:
            self.delivering.set()
        self.opens = 0
        self.is_open = False

    def open(self):
        self.opens += 1
        self.is_open = True

    def read(self, timeout):
        if not self.is_open:
            raise RuntimeError("read from a closed camera")
        if not self.delivering.is_set():
            time.sleep(min(timeout, 0.05))
            return None
        time.sleep(1 / 15)
        return self._emit(self.image, time.monotonic())

    def close(self):
        self.is_open = False


@pytest.fixture
def broker(tmp_path):
    with Mosquitto(require_binary("mosquitto", "mosquitto"), tmp_path / "broker", free_port()) as running:
        yield running


def config_for(port: int, tmp_path: Path, device: str = DEVICE, **mqtt) -> DaemonConfig:
    # max_age_s far above the stall window: only the device forgetting its faces when it stops seeing keeps a
    # face seen after the gap from continuing a track that was already ended.
    return DaemonConfig(device_id=device, camera=CameraConfig(source="gated", stall_timeout_s=1.0),
                        model=ModelConfig(path=packaged_model_path(), threads=1), tracker=TrackerConfig(max_missed=1, max_age_s=30.0),
                        mqtt=mqtt_config(port, tmp_path, **mqtt),
                        service=ServiceConfig(state_dir=tmp_path))




def last(inbox: Inbox, kind: str):
    payloads = inbox.payloads(kind)
    return payloads[-1] if payloads else None


def room(inbox: Inbox) -> tuple[int, str] | None:
    state = last(inbox, "state")
    return None if state is None else (state["faces"], state.get("sensing"))


def retained_now(port: int, topics: list[str]) -> dict[str, object]:
    """Every retained message the broker holds on `topics`, as a new subscriber gets them."""
    inbox = listen(port, topics)
    time.sleep(1.0)  # retained messages come right after the subscription; nothing else is published here
    inbox._pull(0.1)
    inbox.listener.close()
    return {m.topic: m.payload for m in inbox.received if m.retained}


def test_state_is_fresh_at_start_follows_the_camera_and_is_an_empty_room_before_stopped(broker, tmp_path):
    # What a crashed or older run left retained: a face, happy, that nobody sees any more.
    stale = {"version": 1, "device_id": DEVICE, "time": "2026-01-01T00:00:00.000Z", "faces": 1, "dominant": "happy",
             "confidence": 0.9, "counts": {**{k: 0 for k in LABELS}, "happy": 1}}
    paho_publish.single(TOPICS.state, json.dumps(stale), qos=1, retain=True, hostname="127.0.0.1", port=broker.port)
    inbox = listen(broker.port, ALL)
    inbox.wait(lambda i: i.payloads("state"), "the stale retained state")
    assert inbox.payloads("state")[0]["dominant"] == "happy"
    camera = GatedCamera(delivering=False)
    device = RunningDaemon(config_for(broker.port, tmp_path), camera)
    try:
        # Before any frame: the stale room is replaced by an empty one that says the device is not sensing yet.
        inbox.wait(lambda i: room(i) == (0, "starting"), "a fresh empty state at start")
        assert device.daemon.counters.frames == 0 and last(inbox, "availability") == "online"
        # No frame within the stall window (1 s here): camera_down, and the room stays empty.
        inbox.wait(lambda i: last(i, "sensing") == "camera_down" and room(i) == (0, "camera_down"), "camera_down")
        camera.delivering.set()
        inbox.wait(lambda i: last(i, "sensing") == "sensing" and room(i) == (1, "sensing"), "sensing a face")
        # `sensing` comes before the events of what the device sees: Home Assistant's event entity is available
        # by the time a face's `appeared` reaches it.
        kinds = [(m.kind, m.payload if m.kind == "sensing" else m.payload["type"]) for m in inbox.received
                 if m.kind in ("sensing", "events")]
        assert kinds.index(("sensing", "sensing")) < kinds.index(("events", "new"))
        # The camera stalls: its face's track ends (camera_lost), the room empties, sensing goes off.
        camera.delivering.clear()
        inbox.wait(lambda i: last(i, "sensing") == "camera_down" and room(i) == (0, "camera_down"),
                   "camera_down after the camera stalled")
        lost = [e for e in inbox.events() if e["type"] == "end"]
        assert [e["reason"] for e in lost] == ["camera_lost"]
        assert device.daemon.stats()["sensing"] == "camera_down"
        assert device.daemon.live.snapshot().room.faces == 0 and device.daemon.live.snapshot().sensing == "camera_down"
        # It recovers; the face seen again is a new track, not the ended one continued.
        camera.delivering.set()
        inbox.wait(lambda i: room(i) == (1, "sensing"), "sensing again")
        ended = lost[0]["track_id"]
        inbox.wait(lambda i: [e for e in i.events() if e["type"] == "new"][-1]["track_id"] != ended, "a new track")
        assert not [e for e in inbox.events() if e["track_id"] == ended and e["seq"] > lost[0]["seq"]]
        seen = len(inbox.received)
    finally:
        device.stop()
    inbox.wait(lambda i: last(i, "availability") == "stopped", "stopped")
    after = [(m.kind, m.payload) for m in inbox.received[seen:] if m.kind in ("state", "sensing", "availability")]
    # In this order: the empty room (sensing stopped), sensing stopped, then `stopped`; nothing after it.
    assert after[-1] == ("availability", "stopped")
    assert after[-2] == ("sensing", "stopped")
    assert after[-3][0] == "state" and (after[-3][1]["faces"], after[-3][1]["sensing"]) == (0, "stopped")
    check = validator("state")
    for state in inbox.payloads("state")[1:]:
        check.validate(state)
    inbox.listener.close()
    late = retained_now(broker.port, ALL)
    assert late[TOPICS.availability] == "stopped" and late[TOPICS.sensing] == "stopped"
    assert (late[TOPICS.state]["faces"], late[TOPICS.state]["dominant"]) == (0, None)


def test_the_detection_switch_stops_processing_ends_tracks_and_survives_a_restart(broker, tmp_path):
    inbox = listen(broker.port, ALL)
    camera = GatedCamera()
    config = config_for(broker.port, tmp_path)
    device = RunningDaemon(config, camera)
    try:
        inbox.wait(lambda i: room(i) == (1, "sensing") and last(i, "detection") == "ON", "a face, detection on")
        paho_publish.single(TOPICS.detection_set, "OFF", qos=1, hostname="127.0.0.1", port=broker.port)
        inbox.wait(lambda i: last(i, "detection") == "OFF" and last(i, "sensing") == "paused"
                   and room(i) == (0, "paused"), "paused: switch OFF, an empty room")
        assert [e["reason"] for e in inbox.events() if e["type"] == "end"] == ["paused"]
        frames = device.daemon.counters.frames
        time.sleep(1.5)
        assert device.daemon.counters.frames == frames, "frames were processed while detection was off"
        assert not camera.is_open  # privacy: the camera itself is closed
        stats = device.daemon.stats()
        assert (stats["detection"], stats["sensing"]) == ("off", "paused")
        assert json.loads((tmp_path / "detection.json").read_text()) == {"enabled": False}
    finally:
        device.stop()
    # A restart keeps the privacy choice: the camera is never opened until the switch says ON.
    inbox.received.clear()
    camera = GatedCamera()
    device = RunningDaemon(config, camera)
    try:
        inbox.wait(lambda i: last(i, "sensing") == "paused" and last(i, "availability") == "online", "paused again")
        assert last(inbox, "detection") == "OFF" and camera.opens == 0 and device.daemon.counters.frames == 0
        paho_publish.single(TOPICS.detection_set, "ON", qos=1, hostname="127.0.0.1", port=broker.port)
        inbox.wait(lambda i: last(i, "detection") == "ON" and room(i) == (1, "sensing"), "detecting again")
        assert device.daemon.counters.frames > 0 and camera.opens == 1
        paho_publish.single(TOPICS.detection_set, "maybe", qos=1, hostname="127.0.0.1", port=broker.port)
        time.sleep(0.5)
        assert device.daemon.switch.enabled  # anything but ON or OFF is ignored (and logged)
    finally:
        device.stop()
    assert json.loads((tmp_path / "detection.json").read_text()) == {"enabled": True}
    inbox.listener.close()


def test_no_retained_topic_outlives_a_renamed_device_switched_off_discovery_or_forget(broker, tmp_path):
    everything = ["#"]
    store = StateFile(tmp_path / retained.FILE_NAME)

    def run_publisher(device: str, **mqtt) -> None:
        config = mqtt_config(broker.port, tmp_path, **mqtt)
        publisher = MqttPublisher(config, device, LABELS, lambda: MODEL_SHA, retained_store=store).start()
        inbox = listen(broker.port, [f"emotion-edge/{device}/availability"])
        inbox.wait(lambda i: "online" in i.payloads("availability"), f"{device} online")
        time.sleep(0.5)  # discovery and the clearing are published right after `online`
        publisher.close()
        inbox.listener.close()

    run_publisher("hall")
    held = retained_now(broker.port, everything)
    assert sum(t.startswith("homeassistant/") and "/hall/" in t for t in held) == 13 + len(LABELS)
    # Renamed: the old device's configs and retained topics go, the new one's stay.
    run_publisher("hall-2")
    held = retained_now(broker.port, everything)
    assert not [t for t in held if "/hall/" in t], held.keys()
    assert sum(t.startswith("homeassistant/") and "/hall-2/" in t for t in held) == 13 + len(LABELS)
    assert held["emotion-edge/hall-2/availability"] == "stopped"
    # Discovery switched off: its configs go at the next start.
    run_publisher("hall-2", homeassistant=HomeAssistantConfig(enabled=False))
    held = retained_now(broker.port, everything)
    assert not [t for t in held if t.startswith("homeassistant/")], held.keys()
    assert set(held) == {f"emotion-edge/hall-2/{kind}" for kind in ("availability", "state", "sensing")}
    # A config published by hand for this node (an older release, other labels) goes with `forget` too.
    paho_publish.single("homeassistant/sensor/hall-2/legacy/config", "{}", qos=1, retain=True,
                        hostname="127.0.0.1", port=broker.port)
    config = tmp_path / "config.toml"
    config.write_text(f'device_id = "hall-2"\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n'
                      f'[service]\nstate_dir = "{tmp_path}"\n')
    assert main(["forget", "--config", str(config)]) == 0
    assert retained_now(broker.port, everything) == {}
    assert not store.path.exists()


def test_forget_reports_an_unreachable_broker_and_removes_nothing(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(f'device_id = "hall"\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {free_port()}\n')
    assert main(["forget", "--config", str(config), "--timeout", "1", "--state-dir", str(tmp_path)]) == 2
    assert "cannot reach the broker" in capsys.readouterr().err


def test_default_configs_written_by_the_installer_keep_two_pis_apart(broker, tmp_path):
    """Two Pis both named raspberrypi, each installed with the default config: distinct ids, topics, client ids."""
    import subprocess
    import sys

    from emotion_edge.device.config import load_config

    repo = Path(__file__).parent.parent
    ids, publishers = [], []
    for name, machine_id in (("pi-a", "a" * 32), ("pi-b", "b" * 32)):
        root = tmp_path / name
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "machine-id").write_text(machine_id + "\n")
        (root / "etc" / "hostname").write_text("raspberrypi\n")
        done = subprocess.run(["bash", str(repo / "systemd" / "install.sh"), "--root", str(root), "--no-venv",
                               "--emotion-edge", str(Path(sys.executable).with_name("emotion-edge"))],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        config = load_config(root / "etc" / "emotion-edge" / "config.toml")
        ids.append(config.device_id)
        config = replace(config, mqtt=mqtt_config(broker.port, tmp_path / name))
        publishers.append(MqttPublisher(config.mqtt, config.device_id, LABELS, lambda: MODEL_SHA))
    assert ids[0] != ids[1] and all(i.startswith("raspberrypi-") for i in ids), ids
    inbox = listen(broker.port, ["emotion-edge/+/availability"])
    for publisher in publishers:
        publisher.start()
    try:
        assert len({p.client_id for p in publishers}) == 2
        inbox.wait(lambda i: {m.topic for m in i.received if m.payload == "online"}
                   == {f"emotion-edge/{i}/availability" for i in ids}, "both devices online on their own topics",
                   timeout=TIMEOUT)
        time.sleep(1.0)
        assert [p.counters.connects for p in publishers] == [1, 1]  # neither kicked the other off
    finally:
        for publisher in publishers:
            publisher.close()
        inbox.listener.close()
