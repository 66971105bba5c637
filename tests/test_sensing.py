"""The pure parts behind "true at every moment": the sensing state, the detection switch kept across restarts,
which retained topics an earlier run leaves stale, and the status page's address for Home Assistant."""

from __future__ import annotations

import json

import pytest

from emotion_edge.device.config import DaemonConfig
from emotion_edge.device.daemon.app import configuration_url
from emotion_edge.device.daemon.control import DetectionSwitch
from emotion_edge.device.daemon.sensing import SensingMonitor, sensing_state
from emotion_edge.device.mqtt.config import HomeAssistantConfig, MqttConfig
from emotion_edge.device.mqtt.retained import RetainedRecord, stale_topics
from emotion_edge.device.statefile import StateFile
from emotion_edge.device.web.config import HttpConfig


def state(**kwargs):
    args = dict(paused=False, camera_open=True, last_frame_at=None, started_at=0.0, now=0.5, window_s=2.0)
    return sensing_state(**{**args, **kwargs})


def test_sensing_needs_a_recent_frame_an_open_camera_and_detection_on():
    assert state() == "starting"  # no frame yet, within the window
    assert state(now=2.5) == "camera_down"  # no frame for the whole window since start
    assert state(last_frame_at=9.0, now=10.0) == "sensing"
    assert state(last_frame_at=9.0, now=11.5) == "camera_down"  # silent for the window
    assert state(last_frame_at=9.9, now=10.0, camera_open=False) == "camera_down"  # failed, being reopened
    assert state(last_frame_at=9.9, now=10.0, paused=True) == "paused"


def test_the_monitor_tells_its_listeners_each_change_once():
    now = [0.0]
    monitor = SensingMonitor(window_s=1.0, clock=lambda: now[0])
    seen: list[str] = []
    monitor.listeners.append(seen.append)
    for t, frame, paused in [(0.1, False, False), (0.2, True, False), (0.5, True, False), (1.6, False, False),
                             (1.7, False, True), (5.0, False, True), (5.1, False, False), (5.2, True, False)]:
        now[0] = t
        monitor.observe(frame=frame, paused=paused)
    # After a resume the camera gets a fresh window: `starting`, not `camera_down` for the time paused.
    assert seen == ["sensing", "camera_down", "paused", "starting", "sensing"]


def test_the_detection_switch_is_kept_across_restarts_and_tells_its_listeners(tmp_path):
    store = StateFile(tmp_path / "detection.json")
    switch = DetectionSwitch(store)
    heard: list[bool] = []
    switch.subscribe(heard.append)
    assert switch.enabled and not store.path.exists()
    assert switch.set(False, by="test") and not switch.set(False, by="test")
    assert heard == [False] and json.loads(store.path.read_text()) == {"enabled": False}
    assert not DetectionSwitch(StateFile(store.path)).enabled  # a restart keeps the privacy choice
    store.path.write_text("not json")
    assert DetectionSwitch(StateFile(store.path)).enabled  # unreadable: the default, with a warning


def test_a_state_dir_that_is_missing_keeps_the_switch_in_memory(tmp_path, caplog):
    switch = DetectionSwitch(StateFile(tmp_path / "missing" / "detection.json"))
    assert switch.set(False, by="test") and switch.set(True, by="test")
    assert sum("cannot be written" in r.message for r in caplog.records) == 1  # warned once, not per change


def test_stale_topics_are_what_an_earlier_run_published_and_this_one_does_not():
    before = RetainedRecord(("ha/sensor/hall/faces/config", "ha/sensor/hall/fps/config"), ("e/hall/state",))
    now = RetainedRecord(("ha/sensor/hall/faces/config",), ("e/hall-2/state",))
    assert stale_topics(before, now) == ["ha/sensor/hall/fps/config", "e/hall/state"]
    assert stale_topics(RetainedRecord(), now) == []


@pytest.mark.parametrize("http, ha, expected", [
    (HttpConfig(), HomeAssistantConfig(), None),  # [http] off
    (HttpConfig(enabled=True), HomeAssistantConfig(), None),  # loopback only: Home Assistant cannot open it
    (HttpConfig(enabled=True, bind="192.168.1.20", port=8081), HomeAssistantConfig(), "http://192.168.1.20:8081/"),
    (HttpConfig(enabled=True, bind="fd00::20"), HomeAssistantConfig(), "http://[fd00::20]:8080/"),
    (HttpConfig(), HomeAssistantConfig(configuration_url="https://hall.example/"), "https://hall.example/"),
])
def test_configuration_url(http, ha, expected):
    assert configuration_url(DaemonConfig(device_id="hall", http=http, mqtt=MqttConfig(homeassistant=ha))) == expected


def test_configuration_url_on_every_interface_names_the_host(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "hallpi.lan")
    config = DaemonConfig(device_id="hall", http=HttpConfig(enabled=True, bind="0.0.0.0", token_env="X"))
    assert configuration_url(config) == "http://hallpi.local:8080/"


def test_a_configuration_url_that_is_not_http_is_refused():
    with pytest.raises(ValueError, match="configuration_url"):
        HomeAssistantConfig(configuration_url="hall.local")


def test_a_cleared_view_turns_the_preview_dark_instead_of_keeping_the_last_image():
    import cv2
    import numpy as np
    from helpers.mqtt_support import LABELS, face, reading

    from emotion_edge.device.daemon.live import LiveState
    from emotion_edge.device.sources.frames import bgr_frame
    from emotion_edge.device.web.preview import SharedEncoder

    live = LiveState(LABELS)
    encoder = SharedEncoder(live, fps=1000.0, quality=80)
    live.update_frame(bgr_frame(np.full((120, 160, 3), 200, np.uint8), 0.0, 0), reading(0, 0.0, (face(1, "happy"),)))
    first = encoder.latest()
    assert first is not None and cv2.imdecode(np.frombuffer(first[1], np.uint8), cv2.IMREAD_COLOR).mean() > 100
    live.clear_view()  # what the daemon does when it stops seeing
    snapshot = live.snapshot()
    assert snapshot.frame is None and snapshot.reading is None and snapshot.room.faces == 0
    dark = encoder.latest()
    assert dark is not None and dark[0] > first[0]
    assert cv2.imdecode(np.frombuffer(dark[1], np.uint8), cv2.IMREAD_COLOR).max() < 10
