"""The OLED status screen, the HDMI preview and the display manager: pixels, rates, idle dimming, failure isolation.

The OLED runs on luma's own `dummy` device (real luma code, a recording serial
interface instead of I2C); the HDMI preview on a fake Picamera2 (picamera2 exists
only on a Pi) whose `set_overlay` records what it got, driven by the real thread.
"""

import json
import logging
import socket
import threading
import time

import numpy as np
import pytest
from helpers.golden import check_golden, save_doc
from helpers.live_fixtures import HAPPY, LABELS, SURPRISED, face, frame, live_with, reading
from helpers.peers import require_module
from PIL import Image
from test_sources import FakePicamera2

from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.displays.config import DisplayConfig, HdmiConfig, OledConfig
from emotion_edge.device.displays.hdmi import HdmiPreview, preview_kind
from emotion_edge.device.displays.manager import DisplayHardware, DisplayManager
from emotion_edge.device.displays.network import primary_ipv4
from emotion_edge.device.displays.oled import (
    HEIGHT,
    LINE_TOPS,
    WIDTH,
    OledDisplay,
    OledState,
    idle_level,
    oled_state,
    render_oled_screen,
)
from emotion_edge.device.displays.worker import DisplayWorker
from emotion_edge.device.sources import PiCameraConfig, PiCameraSource

luma_device = require_module("luma.core.device", extra="oled")

SCREENS = {
    "oled_happy.png": OledState("happy", 2, 14.8, "connected", "192.168.1.23"),
    "oled_surprise.png": OledState("surprise", 1, 9.2, "disconnected", "10.0.0.7"),
    "oled_nobody.png": OledState(None, 0, None, "disabled", None),
}


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- OLED screen


@pytest.mark.parametrize("name", sorted(SCREENS))
def test_oled_screen_matches_the_golden_image(name):
    screen = render_oled_screen(SCREENS[name])
    assert screen.mode == "1" and screen.size == (WIDTH, HEIGHT)
    check_golden(name, screen)  # a bitmap font on a 1-bit panel: exact
    save_doc(name, screen.convert("L").resize((WIDTH * 4, HEIGHT * 4), Image.Resampling.NEAREST))


def _lit(screen: Image.Image) -> np.ndarray:
    return np.asarray(screen, bool)


def test_oled_shows_the_emotion_large_and_centred_above_three_status_lines():
    pixels = _lit(render_oled_screen(SCREENS["oled_happy.png"]))
    big = pixels[: LINE_TOPS[0] - 2]
    rows, cols = np.flatnonzero(big.any(axis=1)), np.flatnonzero(big.any(axis=0))
    mqtt = np.flatnonzero(pixels[LINE_TOPS[1] : LINE_TOPS[1] + 11].any(axis=1))  # "MQTT connected": caps, no descender
    assert rows[-1] - rows[0] + 1 >= 2 * (mqtt[-1] - mqtt[0] + 1)  # more than twice the status font's height
    assert abs(cols[0] - (WIDTH - 1 - cols[-1])) <= 1  # centred
    for top in LINE_TOPS:
        assert pixels[top : top + 11].any()
    assert not pixels[LINE_TOPS[0] - 2 : LINE_TOPS[0]].any()  # a clear gap under the big word


def test_each_status_line_changes_only_its_own_pixels():
    base = SCREENS["oled_happy.png"]
    changes = {
        0: OledState("happy", 3, 14.8, "connected", "192.168.1.23"),  # faces
        1: OledState("happy", 2, 14.8, "connecting", "192.168.1.23"),  # MQTT
        2: OledState("happy", 2, 14.8, "connected", "192.168.1.24"),  # IP
    }
    before = _lit(render_oled_screen(base))
    for line, state in changes.items():
        after = _lit(render_oled_screen(state))
        changed_rows = np.flatnonzero((before != after).any(axis=1))
        assert changed_rows.size and LINE_TOPS[line] <= changed_rows.min() and changed_rows.max() < LINE_TOPS[line] + 11


def test_oled_state_comes_from_the_room_summary():
    live = live_with(face(1, (10, 10, 60, 60), HAPPY), face(2, (200, 10, 60, 60), SURPRISED))
    live.update(mqtt="connected")
    state = oled_state(live.snapshot(), "10.1.2.3", 12.0)
    assert state == OledState("happy", 2, 12.0, "connected", "10.1.2.3")
    assert oled_state(LiveState(LABELS).snapshot(), None, None) == OledState(None, 0, None, "disabled", None)


def test_idle_levels():
    config = OledConfig(idle_dim_s=60, idle_blank_s=600)
    assert [idle_level(t, config) for t in (0, 59.9, 60, 599, 600)] == ["on", "on", "dim", "dim", "blank"]
    never = OledConfig(idle_dim_s=0, idle_blank_s=0)
    assert idle_level(1e9, never) == "on"


# --------------------------------------------------------------------------- OLED device


class RecordingSerial:
    """luma's serial interface contract (command, data, cleanup), recording the panel commands it is sent."""

    def __init__(self):
        self.commands: list[tuple[int, ...]] = []

    def command(self, *cmd: int) -> None:
        self.commands.append(cmd)

    def data(self, data) -> None:
        pass

    def cleanup(self) -> None:
        self.commands.append(("cleanup",))


SETCONTRAST, DISPLAYOFF, DISPLAYON = 0x81, 0xAE, 0xAF


def _oled(live: LiveState, clock: FakeClock, **config):
    serial = RecordingSerial()
    device = luma_device.dummy(width=WIDTH, height=HEIGHT, mode="1", serial_interface=serial)
    settings = {"enabled": True, "idle_dim_s": 60.0, "idle_blank_s": 600.0, "contrast": 200, "dim_contrast": 10} | config
    display = OledDisplay(OledConfig(**settings), live, device, ip_provider=lambda: "192.168.1.23", clock=clock)
    return display, device, serial


def test_oled_device_shows_the_live_state_and_skips_unchanged_frames():
    live = live_with(face(1, (10, 10, 60, 60), HAPPY))
    live.update(mqtt="connected")
    clock = FakeClock()
    display, device, serial = _oled(live, clock)
    display.tick()
    assert serial.commands[:2] == [(DISPLAYON,), (SETCONTRAST, 200)]
    expected = render_oled_screen(OledState("happy", 1, None, "connected", "192.168.1.23"))
    assert np.array_equal(_lit(device.image), _lit(expected))  # what reached the panel, pixel for pixel
    clock.now += 0.5
    display.tick()  # no frame for half a second: the pipeline's rate shows as 0
    clock.now += 0.5
    display.tick()  # still 0: the same picture is not sent again
    assert display.frames_sent == 2
    live.update_frame(frame(index=1), reading(face(1, (10, 10, 60, 60), HAPPY), index=1))
    clock.now += 0.5
    display.tick()  # one frame in half a second: 2 fps, averaged with the 0 before
    assert display.frames_sent == 3
    assert np.array_equal(_lit(device.image), _lit(render_oled_screen(OledState("happy", 1, 1.0, "connected",
                                                                                 "192.168.1.23"))))


def test_oled_dims_then_blanks_when_nobody_is_in_view_and_wakes_for_a_face():
    live = live_with()  # empty room
    clock = FakeClock()
    display, device, serial = _oled(live, clock)
    display.tick()
    clock.now += 59
    display.tick()
    assert (SETCONTRAST, 10) not in serial.commands
    clock.now += 1
    display.tick()
    assert serial.commands[-1] == (SETCONTRAST, 10)  # dimmed after idle_dim_s
    sent = display.frames_sent
    clock.now += 540
    display.tick()
    assert serial.commands[-1] == (DISPLAYOFF,)  # off after idle_blank_s
    clock.now += 10
    display.tick()
    assert display.frames_sent == sent and serial.commands[-1] == (DISPLAYOFF,)  # nothing drawn while off
    live.update_frame(frame(index=5), reading(face(4, (10, 10, 60, 60), HAPPY), index=5))
    display.tick()
    assert serial.commands[-2:] == [(DISPLAYON,), (SETCONTRAST, 200)]
    assert display.frames_sent == sent + 1
    assert np.asarray(device.image, bool)[:25].any()  # the big word is back


def test_oled_thread_redraws_at_its_rate_and_switches_the_panel_off_on_stop():
    live = live_with(face(1, (10, 10, 60, 60), HAPPY))
    display, device, serial = _oled(live, time.monotonic, refresh_hz=20.0)
    display.worker.start()
    time.sleep(0.5)
    display.worker.stop()
    assert 3 <= display.worker.ticks <= 12  # 20 Hz for half a second, never faster
    assert not display.worker.running
    assert serial.commands[-2:] == [(DISPLAYOFF,), ("cleanup",)]  # luma's cleanup: panel off, then I2C closed


# --------------------------------------------------------------------------- IP address


class FakeSocket:
    def __init__(self, address: str | None):
        self.address, self.connected_to = address, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def connect(self, target):
        if self.address is None:
            raise OSError(101, "Network is unreachable")
        self.connected_to = target

    def getsockname(self):
        return (self.address, 54321)


def test_primary_ipv4_asks_the_kernel_for_a_route_without_sending():
    made = []

    def factory(family, kind):
        assert (family, kind) == (socket.AF_INET, socket.SOCK_DGRAM)  # UDP: connect() sends no packet
        made.append(FakeSocket("192.168.1.23"))
        return made[-1]

    assert primary_ipv4(factory) == "192.168.1.23"
    assert made[0].connected_to[0] == "192.0.2.1"  # TEST-NET-1: nothing there would answer anyway
    assert primary_ipv4(lambda *_: FakeSocket(None)) is None  # offline
    assert primary_ipv4(lambda *_: FakeSocket("0.0.0.0")) is None


# --------------------------------------------------------------------------- HDMI


class PreviewCamera(FakePicamera2):
    """FakePicamera2 plus what the HDMI preview uses: the configured main size, start_preview and set_overlay."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.overlays: list[np.ndarray] = []
        self.fail_overlay = False

    def configure(self, config) -> None:
        super().configure(config)
        self.camera_config = {"main": dict(self.config_kwargs["main"])}

    def set_overlay(self, overlay: np.ndarray) -> None:
        if self.fail_overlay:
            raise RuntimeError("DRM plane went away")
        self.calls.append("set_overlay")
        self.overlays.append(overlay)


SMALL = PiCameraConfig(main_size=(320, 240), lores_size=(160, 120))


def _preview(live: LiveState, started: list, max_fps: float = 10.0, fail: Exception | None = None,
             clock=time.monotonic) -> HdmiPreview:
    def start_preview(camera, kind):
        if fail is not None:
            raise fail
        started.append(kind)
        camera.calls.append(f"start_preview:{kind}")

    return HdmiPreview(HdmiConfig(enabled=True, kind="drm", max_fps=max_fps), live, start_preview=start_preview,
                       clock=clock)


def test_preview_kind_follows_the_session():
    assert preview_kind("auto", {}) == "drm"
    assert preview_kind("auto", {"DISPLAY": ":0"}) == "qtgl"
    assert preview_kind("auto", {"WAYLAND_DISPLAY": "wayland-1"}) == "qtgl"
    assert preview_kind("drm", {"DISPLAY": ":0"}) == "drm"


def test_preview_starts_between_configure_and_start_and_overlays_the_main_stream():
    live = live_with(face(2, (40, 30, 40, 40), SURPRISED), image_size=(320, 240), gray_size=(160, 120))
    started: list = []
    preview = _preview(live, started, clock=FakeClock())  # frozen: the HUD's measured fps stays unknown
    camera = PreviewCamera(main_size=(320, 240), lores_size=(160, 120))
    with PiCameraSource(SMALL, camera_factory=lambda: camera, preview=preview) as source:
        assert source.camera is camera
        preview.tick()
        preview.tick()  # no new frame since: not redrawn
    assert camera.calls[:3] == ["configure", "start_preview:drm", "start"]  # picamera2 needs it before start()
    assert camera.calls.count("set_overlay") == 1
    [overlay] = camera.overlays
    assert overlay.shape == (240, 320, 4) and overlay.dtype == np.uint8  # RGBA at the main stream's size
    assert tuple(overlay[60 + 40, 80]) == (230, 200, 0, 255)  # surprise in RGBA order; the lores box doubled onto main
    assert source.camera is None
    live.update_frame(frame((320, 240), (160, 120), 1), reading(index=1))
    preview.tick()
    assert camera.calls.count("set_overlay") == 1  # detached when the camera closed


def test_preview_thread_never_exceeds_its_rate_however_fast_frames_come():
    live = LiveState(LABELS)
    camera = PreviewCamera(main_size=(320, 240), lores_size=(160, 120))
    preview = _preview(live, [], max_fps=10.0)
    stop = threading.Event()

    def camera_loop():  # a pipeline at about 200 fps
        index = 0
        while not stop.is_set():
            live.update_frame(frame((320, 240), (160, 120), index), reading(face(1, (40, 30, 40, 40), HAPPY), index=index))
            index += 1
            time.sleep(0.005)

    with PiCameraSource(SMALL, camera_factory=lambda: camera, preview=preview):
        feeder = threading.Thread(target=camera_loop)
        feeder.start()
        preview.worker.start()
        time.sleep(1.0)
        preview.worker.stop()
        stop.set()
        feeder.join()
    assert 4 <= len(camera.overlays) <= 12  # 10 per second (plus the first), never one per camera frame
    assert live.snapshot().sequence > 3 * len(camera.overlays)


def test_a_preview_that_cannot_start_is_logged_once_and_the_camera_runs_without_it(caplog):
    live = LiveState(LABELS)
    preview = _preview(live, [], fail=RuntimeError("no DRM device"))
    cameras = []

    def factory():
        cameras.append(PreviewCamera(main_size=(320, 240), lores_size=(160, 120)))
        return cameras[-1]

    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # the camera is reopened: the preview is not retried, nor logged again
            with PiCameraSource(SMALL, camera_factory=factory, preview=preview) as source:
                assert source.read(0.5) is not None
    assert "no DRM device" in preview.failure
    assert [r.getMessage() for r in caplog.records if "hdmi" in r.getMessage()] == [
        "hdmi preview disabled: cannot start the drm preview: RuntimeError: no DRM device"]
    assert all(c.calls[:2] == ["configure", "start"] for c in cameras)


def test_a_failing_overlay_stops_the_preview_thread_once_and_nothing_else(caplog):
    live = live_with(face(2, (40, 30, 40, 40), HAPPY), image_size=(320, 240), gray_size=(160, 120))
    camera = PreviewCamera(main_size=(320, 240), lores_size=(160, 120))
    camera.fail_overlay = True
    preview = _preview(live, [], max_fps=50.0)
    with caplog.at_level(logging.WARNING), PiCameraSource(SMALL, camera_factory=lambda: camera, preview=preview) as source:
        preview.worker.start()
        preview.worker._thread.join(2.0)
        assert not preview.worker.running and preview.worker.ticks == 0
        assert source.read(0.5) is not None  # the camera goes on
    assert [r.getMessage() for r in caplog.records] == [
        "display hdmi failed and is disabled: RuntimeError: DRM plane went away"]


# --------------------------------------------------------------------------- worker and manager


def test_worker_runs_at_most_at_its_rate_and_stops_on_the_first_error(caplog):
    calls = []
    worker = DisplayWorker("test", 50.0, lambda: calls.append(time.monotonic()))
    worker.start()
    time.sleep(0.4)
    worker.stop()
    assert 5 <= len(calls) <= 21 and not worker.running
    assert np.diff(calls).min() >= 0.95 / 50  # a whole period between ticks, however late one ran

    closed = []

    def boom():
        raise OSError(121, "Remote I/O error")  # an I2C panel unplugged mid-run

    failing = DisplayWorker("oled", 50.0, boom, close=lambda: closed.append(True))
    with caplog.at_level(logging.WARNING):
        failing.start()
        failing._thread.join(2.0)
    assert not failing.running and closed == [True]
    assert failing.failure == "OSError: [Errno 121] Remote I/O error"
    assert len(caplog.records) == 1


def test_manager_disables_absent_displays_with_one_reason_each(caplog):
    def no_panel(config):
        raise FileNotFoundError(2, "No such file or directory", f"/dev/i2c-{config.i2c_port}")

    config = DisplayConfig(hdmi=HdmiConfig(enabled=True), oled=OledConfig(enabled=True))
    with caplog.at_level(logging.WARNING):
        manager = DisplayManager(config, LiveState(LABELS), camera_source="examples/demo.mp4",
                                 hardware=DisplayHardware(open_oled=no_panel))
        manager.start()
        manager.stop()
    assert manager.hdmi is None and manager.oled is None and manager.camera_preview is None
    status = manager.status()
    assert status["hdmi"].startswith("off: the HDMI preview needs the picamera2 source")
    assert "cannot open the ssd1306 at i2c-1 address 0x3c" in status["oled"] and "/dev/i2c-1" in status["oled"]
    assert len(caplog.records) == 2
    assert DisplayManager(DisplayConfig(), LiveState(LABELS), camera_source="picamera2").status() == {}


def test_manager_runs_the_oled_it_opened():
    serial = RecordingSerial()
    live = live_with(face(1, (10, 10, 60, 60), HAPPY))
    manager = DisplayManager(
        DisplayConfig(oled=OledConfig(enabled=True, refresh_hz=20.0)), live, camera_source="picamera2",
        hardware=DisplayHardware(open_oled=lambda c: luma_device.dummy(mode="1", serial_interface=serial),
                                 ip_provider=lambda: "10.0.0.2", clock=FakeClock()))
    manager.start()
    deadline = time.monotonic() + 2.0
    while manager.oled.device.image is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert manager.status() == {"oled": "running"}
    expected = render_oled_screen(OledState("happy", 1, None, "disabled", "10.0.0.2"))
    assert np.array_equal(_lit(manager.oled.device.image), _lit(expected))
    manager.stop()
    assert manager.status() == {"oled": "stopped"}
    assert not _lit(manager.oled.device.image).any()  # cleared on stop: no stale mood left lit


def test_run_command_goes_on_when_the_configured_displays_are_absent(tmp_path, capsys):
    from pathlib import Path

    from emotion_edge.device.model.metadata import packaged_model_path
    from emotion_edge.main import main

    demo = Path(__file__).parent.parent / "examples" / "demo.mp4"
    config = tmp_path / "config.toml"
    # Port 99: no such I2C bus anywhere, so this test cannot reach a real panel.
    config.write_text(f'[camera]\nsource = "{demo}"\npaced = false\n[model]\npath = "{packaged_model_path()}"\nthreads = 1\n'
                      "[display.hdmi]\nenabled = true\n[display.oled]\nenabled = true\ni2c_port = 99\n")
    assert main(["run", "--config", str(config), "--max-frames", "12"]) == 0
    out, err = capsys.readouterr()  # `run` logs to stderr through its own handler
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["frames"] == 12
    assert set(stats["displays"]) == {"hdmi", "oled"} and all(v.startswith("off: ") for v in stats["displays"].values())
    disabled = [line for line in err.splitlines() if "WARNING emotion_edge.device.displays" in line]
    assert len(disabled) == 2 and "needs the picamera2 source" in disabled[0] and "i2c-99" in disabled[1]
