"""The network preview from a running daemon: headless Chromium loads the status page, the MJPEG video updates,
the state text matches the last event a subscriber got from a real MQTT broker; plus the stream itself and its
shared encoder."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Iterator

import cv2
import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from helpers.browser import chromium
from helpers.mosquitto import Mosquitto
from helpers.peers import free_port, require_binary, wait_until
from helpers.photo import astronaut_bgr
from helpers.webserver import head

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig, PipelineConfig
from emotion_edge.device.contract import EMOTIONS
from emotion_edge.device.daemon.app import attach_mqtt, build_daemon
from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.daemon.loop import Daemon
from emotion_edge.device.daemon.timeline import Timeline
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.mqtt.config import MqttConfig, Topics
from emotion_edge.device.sources import Frame
from emotion_edge.device.web.config import HttpConfig
from emotion_edge.device.web.preview import SharedEncoder
from emotion_edge.device.web.server import HttpServer, start_for_daemon

TOKEN = "page-token-0123456789abcdef"
DEVICE = "status-page-test"
TIMEOUT = 20.0  # generous for a loaded 2-core machine; every wait returns as soon as its condition holds


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    """A person sliding right and back, looped by the daemon: every frame differs from the last, and the person
    never jumps, so the tracker keeps one track and the events settle once the emotion does."""
    face = head(astronaut_bgr())
    face = cv2.resize(face, None, fx=1.5, fy=1.5)
    path = tmp_path_factory.mktemp("video") / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    for i in [*range(30), *range(29, -1, -1)]:
        canvas = np.full((480, 640, 3), 90, np.uint8)
        x, y = 40 + 8 * i, 100
        canvas[y : y + face.shape[0], x : x + face.shape[1]] = face
        writer.write(canvas)
    writer.release()
    return path


def daemon_config(video: Path, tmp_path: Path, mqtt_config: MqttConfig | None = None) -> DaemonConfig:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    return DaemonConfig(device_id=DEVICE, camera=CameraConfig(source=str(video), loop=True, fps=15.0),
                        model=ModelConfig(path=packaged_model_path(), threads=1),
                        pipeline=PipelineConfig(stats_interval_s=1.0),
                        http=HttpConfig(enabled=True, port=free_port(), token_file=token_file, preview_fps=8.0),
                        **({"mqtt": mqtt_config} if mqtt_config is not None else {}))


@contextlib.contextmanager
def running(config: DaemonConfig, live: LiveState | None = None) -> Iterator[tuple[Daemon, HttpServer]]:
    """The camera loop on its thread with the HTTP server and, with [mqtt] on, the publisher, as `emotion-edge run`
    starts them; yields once the daemon sees the person."""
    daemon = build_daemon(config, live=live)
    publisher = attach_mqtt(daemon) if config.mqtt.enabled else None
    loop = threading.Thread(target=daemon.run, name="camera-loop", daemon=True)  # a hung loop must not hold pytest
    loop.start()
    web = None
    try:
        web = start_for_daemon(config, daemon.live)
        assert web is not None
        wait_until(lambda: daemon.live.snapshot().room.faces, "the daemon to find the face in the replayed video")
        yield daemon, web
    finally:
        if web is not None:
            web.stop()
        daemon.stop()
        loop.join(10)
        if publisher is not None:
            publisher.close()


class EventSubscriber:
    """A plain paho client on the device's events topic, independent of the device's own MQTT code: every event
    the broker delivered, in arrival order."""

    def __init__(self, port: int, topic: str):
        self._events: list[dict] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="status-page-subscriber")
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._received
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(TIMEOUT):
            self.close()
            raise AssertionError(f"the subscriber could not subscribe to {topic}")

    def _received(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._events.append(json.loads(message.payload))

    def last(self) -> dict | None:
        with self._lock:
            return self._events[-1] if self._events else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def running_daemon(face_video, tmp_path):
    """The daemon with its HTTP server, [mqtt] off."""
    with running(daemon_config(face_video, tmp_path)) as daemon_and_web:
        yield daemon_and_web


@pytest.fixture
def publishing_daemon(face_video, tmp_path):
    """The daemon with [mqtt] on, publishing to a real mosquitto (spool in tmp), and a subscriber on its events
    topic that listened from before the first event."""
    with Mosquitto(require_binary("mosquitto", "mosquitto"), tmp_path / "broker", free_port()) as broker:
        subscriber = EventSubscriber(broker.port, Topics.for_device(DEVICE).events)
        settings = MqttConfig(enabled=True, host="127.0.0.1", port=broker.port, spool_path=tmp_path / "spool.db",
                              reconnect_min_s=0.1, reconnect_max_s=0.5, shutdown_flush_s=2.0)
        try:
            with running(daemon_config(face_video, tmp_path, settings)) as (daemon, web):
                yield daemon, web, subscriber
        finally:
            subscriber.close()


# The <img>'s current picture, drawn into a canvas: proves the browser decoded a frame and which one it shows.
VIDEO_PIXELS = """
const img = document.getElementById('video');
if (!img.complete || img.naturalWidth === 0) return null;
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const context = canvas.getContext('2d');
context.drawImage(img, 0, 0);
return [img.naturalWidth, img.naturalHeight, canvas.toDataURL('image/png')];
"""


def page_event(browser) -> dict | None:
    """The page's "last event" text as JSON; None while it says there is none."""
    from selenium.webdriver.common.by import By

    text = browser.find_element(By.ID, "last-event").text
    return None if text == "none yet" else json.loads(text)


@pytest.mark.peer
def test_status_page_in_headless_chromium(publishing_daemon, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    daemon, web, subscriber = publishing_daemon
    browser = chromium()
    try:
        browser.get(f"{web.url}/?token={TOKEN}")
        wait = WebDriverWait(browser, TIMEOUT, poll_frequency=0.2)
        width, height, first = wait.until(lambda b: b.execute_script(VIDEO_PIXELS))
        assert (width, height) == (640, 480)
        # The video element updates: a later picture differs (the person moves), and so does the frame number.
        frame_text = wait.until(lambda b: b.find_element(By.ID, "frame").text if "frame " in b.find_element(By.ID, "frame").text else None)
        wait.until(lambda b: b.execute_script(VIDEO_PIXELS)[2] != first)
        wait.until(lambda b: b.find_element(By.ID, "frame").text not in ("", frame_text))
        # The MQTT line: the publisher is connected to the broker.
        wait.until(lambda b: b.find_element(By.ID, "mqtt").text == "connected")
        # The state text is the last event the broker delivered to a subscriber, compared as parsed JSON. A track
        # publishes at most one event a second and the page polls twice a second, so the two settle on the same
        # event even while the stream goes on; a page showing anything but a delivered event never matches.
        seen: dict[str, dict | None] = {}

        def page_shows_the_last_delivered_event() -> dict | None:
            seen["page"], seen["subscriber"] = page_event(browser), subscriber.last()
            return seen["page"] if seen["page"] is not None and seen["page"] == seen["subscriber"] else None

        event = wait_until(page_shows_the_last_delivered_event, "the page's last event to be the subscriber's last",
                         describe=lambda: f"page: {seen.get('page')}, subscriber: {seen.get('subscriber')}")
        assert event["device_id"] == DEVICE and event["seq"] >= 1 and event["type"] in ("new", "update", "end")
        assert isinstance(event["track_id"], int) and (event["after"] or event["before"])["emotion"] in EMOTIONS
        room = browser.find_element(By.ID, "room").text
        assert room.endswith("1 face") and room.split()[0] in EMOTIONS
        assert browser.find_element(By.ID, "error").text == ""
        wait.until(lambda b: "fps" in b.find_element(By.ID, "stats").text)  # the daemon's periodic stats arrived
        screenshot = tmp_path / "status-page.png"
        assert browser.save_screenshot(str(screenshot))
        assert cv2.imread(str(screenshot)).shape[1] >= 1000
    finally:
        browser.quit()


@pytest.mark.peer
def test_the_status_page_draws_the_timeline_of_a_running_daemon(face_video, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # A short window of short buckets, so a test run fills it: the same ring buffer as the daemon's hour of 10 s.
    live = LiveState(EMOTIONS, Timeline(bucket_s=1.0, span_s=60.0))
    with running(daemon_config(face_video, tmp_path), live) as (daemon, web), \
            httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        wait_until(lambda: len(client.get("/api/v1/timeline").json()["points"]) >= 5, "five timeline points")
        browser = chromium()
        try:
            browser.get(f"{web.url}/?token={TOKEN}")
            wait = WebDriverWait(browser, TIMEOUT, poll_frequency=0.2)
            rects = wait.until(lambda b: len(found := b.find_elements(By.CSS_SELECTOR, "#timeline rect.dominant")) >= 5
                               and found)
            drawn = [rect.get_attribute("data-emotion") for rect in rects]
            faces = browser.find_element(By.ID, "timeline-faces").get_attribute("points").split()
            timeline = client.get("/api/v1/timeline").json()  # fetched after the page's: it holds the page's points
            legend = browser.find_element(By.ID, "timeline-legend").text
            screenshot = tmp_path / "status-page-timeline.png"
            assert browser.save_screenshot(str(screenshot))
            assert browser.find_element(By.ID, "error").text == ""
            resources = browser.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
        finally:
            browser.quit()
    assert timeline["bucket_s"] == 1.0 and timeline["labels"] == list(EMOTIONS)
    api = [p["dominant"] for p in timeline["points"] if p["dominant"] is not None]
    settled = drawn[:-1]  # the page's last point was the bucket in progress; the others no longer change
    assert any(api[i:i + len(settled)] == settled for i in range(len(api))), (drawn, api)
    assert set(drawn) <= set(EMOTIONS) and all(label in legend for label in set(drawn))
    # One person throughout: a full bucket's mean is 1 face, drawn at the top of the faces area (y = 44).
    assert len(faces) >= 5 and sum(float(point.split(",")[1]) == 44.0 for point in faces) >= len(faces) - 2, faces
    assert all(name.startswith(web.url) for name in resources), resources  # nothing from outside the device
    assert cv2.imread(str(screenshot)).shape[1] >= 1000


def test_the_timeline_keeps_one_point_per_bucket_for_a_bounded_span():
    from emotion_edge.device.room import RoomState

    clock = FakeClock()
    timeline = Timeline(bucket_s=10.0, span_s=60.0, clock=clock)
    happy = RoomState(2, "happy", 0.8, {"happy": 1, "sad": 1})
    empty = RoomState(0, None, 0.0, {"happy": 0, "sad": 0})
    for second in range(0, 200):  # 20 buckets, 4 frames a second
        for quarter in range(4):
            clock.now = 1000.0 + second + quarter / 4
            timeline.observe(happy if second % 20 < 10 else empty)
    points = timeline.points()
    assert len(points) == 6 and timeline._points.maxlen == 6  # bounded: the last minute, whatever the frame rate
    assert [p.start for p in points] == [1140.0, 1150.0, 1160.0, 1170.0, 1180.0, 1190.0]
    assert [p.dominant for p in points] == ["happy", None, "happy", None, "happy", None]
    assert points[0].faces == 2.0 and points[0].max_faces == 2 and points[0].frames == 40
    assert points[0].shares == {"happy": 50.0, "sad": 50.0} and points[1].shares == {"happy": 0.0, "sad": 0.0}
    body = timeline.to_dict()
    assert body["labels"] == ["happy", "sad"] and body["points"][1]["time"] == "1970-01-01T00:19:10.000Z"
    with pytest.raises(ValueError):
        Timeline(bucket_s=0)


def test_mjpeg_stream_and_state_over_http(running_daemon):
    daemon, web = running_daemon
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=web.url, headers=headers, timeout=10) as client:
        assert client.get("/preview.mjpg", headers={"Authorization": "Bearer nope"}).status_code == 401
        with client.stream("GET", "/preview.mjpg") as stream:
            assert stream.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
            buffer = b""
            for chunk in stream.iter_bytes():
                buffer += chunk
                if buffer.count(b"--frame\r\n") >= 3:
                    break
        parts = buffer.split(b"--frame\r\n")[1:3]
        jpegs = [part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0] for part in parts]
        images = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
        assert all(image.shape == (480, 640, 3) for image in images)
        state = client.get("/api/v1/state").json()
        assert state["room"]["faces"] == 1 and state["faces"][0]["emotion"] in EMOTIONS
        assert 0 < state["sequence"] <= daemon.live.snapshot().sequence  # the daemon's live state, as it goes on
        assert state["mqtt"] == "disabled" and state["last_event"] is None  # [mqtt] off: nothing published


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _publish(live: LiveState, index: int) -> None:
    image = np.full((120, 160, 3), index % 255, np.uint8)
    live.update_frame(Frame(image=image, gray=image[:, :, 0].copy(), timestamp=float(index), index=index), None)


def test_shared_encoder_encodes_each_frame_once_for_all_viewers_and_at_most_fps():
    live, clock = LiveState(EMOTIONS), FakeClock()
    encoder = SharedEncoder(live, fps=10, quality=70, clock=clock)
    assert encoder.latest() is None  # nothing to show before the first frame
    _publish(live, 1)
    first = [encoder.latest() for _ in range(3)]  # three viewers asking for the same frame
    assert encoder.encodes == 1 and first[0] == first[1] == first[2]
    _publish(live, 2)
    clock.now = 0.05  # a new frame, but only half a preview interval later: viewers get the previous picture
    assert encoder.latest() == first[0] and encoder.encodes == 1
    clock.now = 0.1
    sequence, jpeg = encoder.latest()
    assert encoder.encodes == 2 and sequence == live.snapshot().sequence and jpeg != first[0][1]
