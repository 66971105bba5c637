"""The network preview from a running daemon: headless Chromium loads the status page, the MJPEG video updates,
the state text matches the live snapshot's last MQTT event; plus the stream itself and its shared encoder."""

import json
import threading
import time

import cv2
import httpx
import numpy as np
import pytest

from conftest import free_port, require_binary
from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig, PipelineConfig
from emotion_edge.device.contract import EMOTIONS
from emotion_edge.device.daemon import Daemon
from emotion_edge.device.live import LiveState
from emotion_edge.device.model_metadata import packaged_model_path
from emotion_edge.device.sources import Frame
from emotion_edge.device.web.config import HttpConfig
from emotion_edge.device.web.preview import SharedEncoder
from emotion_edge.device.web.server import start_for_daemon
from webserver import head

skimage_data = pytest.importorskip("skimage.data")
TOKEN = "page-token-0123456789abcdef"
# What the MQTT publisher hands LiveState after publishing (device/mqtt_publisher.py); set by the test when the
# daemon runs without a broker, so the page is checked against the snapshot either way.
SAMPLE_EVENT = {"v": 1, "type": "new", "reason": "appeared", "track_id": 1, "device_id": "emotion-edge",
                "after": {"emotion": "happy", "confidence": 0.8123}}


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    """A person sliding across the view, looped by the daemon: every frame differs from the last."""
    face = head(np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1]))
    face = cv2.resize(face, None, fx=1.5, fy=1.5)
    path = tmp_path_factory.mktemp("video") / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    for i in range(30):
        canvas = np.full((480, 640, 3), 90, np.uint8)
        x, y = 40 + 8 * i, 100
        canvas[y : y + face.shape[0], x : x + face.shape[1]] = face
        writer.write(canvas)
    writer.release()
    return path


@pytest.fixture
def running_daemon(face_video, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = DaemonConfig(camera=CameraConfig(source=str(face_video), loop=True, fps=15.0),
                          model=ModelConfig(path=packaged_model_path(), threads=1),
                          pipeline=PipelineConfig(stats_interval_s=1.0),
                          http=HttpConfig(enabled=True, port=free_port(), token_file=token_file, preview_fps=8.0))
    daemon = Daemon(config)
    loop = threading.Thread(target=daemon.run, name="camera-loop")
    loop.start()
    web = start_for_daemon(config, daemon.live)
    assert web is not None
    try:
        deadline = time.monotonic() + 20
        while daemon.live.snapshot().room.faces == 0:
            assert time.monotonic() < deadline, "the daemon found no face in the replayed video"
            time.sleep(0.1)
        if daemon.live.snapshot().last_event is None:  # no broker in this test: stand in for the MQTT publisher
            daemon.live.update(last_event=SAMPLE_EVENT)
        yield daemon, web
    finally:
        web.stop()
        daemon.stop()
        loop.join(10)


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = require_binary("chromium", "chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(require_binary("chromedriver", "chromium-driver")), options=options)


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


def test_status_page_in_headless_chromium(running_daemon, tmp_path, pytestconfig):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    daemon, web = running_daemon
    require_binary("chromium", "chromium")
    pytest.importorskip("selenium")
    browser = chromium()
    try:
        browser.get(f"{web.url}/?token={TOKEN}")
        wait = WebDriverWait(browser, 20, poll_frequency=0.2)
        width, height, first = wait.until(lambda b: b.execute_script(VIDEO_PIXELS))
        assert (width, height) == (640, 480)
        # The video element updates: a later picture differs (the person moves), and so does the frame number.
        frame_text = wait.until(lambda b: b.find_element(By.ID, "frame").text if "frame " in b.find_element(By.ID, "frame").text else None)
        wait.until(lambda b: b.execute_script(VIDEO_PIXELS)[2] != first)
        wait.until(lambda b: b.find_element(By.ID, "frame").text not in ("", frame_text))
        # The state text matches the live snapshot: the last MQTT event, the room, the MQTT line.
        snapshot = daemon.live.snapshot()
        wait.until(lambda b: b.find_element(By.ID, "last-event").text != "none yet")
        assert json.loads(browser.find_element(By.ID, "last-event").text) == snapshot.last_event
        assert browser.find_element(By.ID, "mqtt").text == snapshot.mqtt
        room = browser.find_element(By.ID, "room").text
        assert room.startswith(snapshot.room.dominant) and room.endswith("1 face")
        assert browser.find_element(By.ID, "error").text == ""
        wait.until(lambda b: "fps" in b.find_element(By.ID, "stats").text)  # the daemon's periodic stats arrived
        screenshot = tmp_path / "status-page.png"
        assert browser.save_screenshot(str(screenshot))
        assert cv2.imread(str(screenshot)).shape[1] >= 1000
    finally:
        browser.quit()


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
        assert state["sequence"] > 0 and state["last_event"] == daemon.live.snapshot().last_event


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
