"""The one composition root: builds every part of a running device from its config, starts them, stops them.

Nothing else wires parts together. The camera loop (`Daemon`) receives its pipeline, source, live state and
notifier from here; the displays, MQTT publisher and HTTP server are plugged into it here; `emotion-edge run`
only parses arguments and calls `App(config).run()`.
"""

from __future__ import annotations

import ipaddress
import socket

from emotion_edge.device.config import DaemonConfig
from emotion_edge.device.daemon import control
from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.daemon.loop import Daemon, ReadingHandler, change_logger
from emotion_edge.device.daemon.service import ServiceNotifier
from emotion_edge.device.detection import make_detector
from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.mqtt import retained
from emotion_edge.device.mqtt.publisher import MqttPublisher
from emotion_edge.device.pipeline import FacePipeline
from emotion_edge.device.sources import Backoff, CameraPreview, FrameSource, ReopeningSource, open_source
from emotion_edge.device.statefile import StateFile


def build_source(config: DaemonConfig, camera_preview: CameraPreview | None = None) -> ReopeningSource:
    """The configured camera, reopened on failure; `camera_preview` (the HDMI preview) rides every Pi camera it opens.

    An image folder skips bad files (counted in stats.source.bad_files, each logged once): raising would make the
    reopening source open the same folder and fail on the same file forever, showing none of the good ones.
    """
    camera = config.camera
    options = camera.source_options(camera_preview=camera_preview, on_bad_file="skip")
    return ReopeningSource(
        lambda: open_source(camera.source, options),
        Backoff(initial=camera.reopen_initial_s, max_delay=camera.reopen_max_s),
        stall_timeout=camera.stall_timeout_s,
        name=camera.source,
    )


def build_pipeline(config: DaemonConfig) -> FacePipeline:
    """The configured detector and classifier, with the tracker and smoother behind them."""
    classifier = EmotionClassifier(config.model.path, threads=config.model.threads)
    return FacePipeline(make_detector(config.detector), classifier, config.pipeline, config.tracker, config.smoothing)


def build_daemon(config: DaemonConfig, source: FrameSource | None = None, handlers: list[ReadingHandler] | None = None,
                 camera_preview: CameraPreview | None = None, live: LiveState | None = None) -> Daemon:
    """The camera loop with its parts: `source` defaults to the configured camera (carrying `camera_preview`)."""
    pipeline = build_pipeline(config)
    if source is None:
        source = build_source(config, camera_preview)
    live = live if live is not None else LiveState(pipeline.classifier.labels)
    return Daemon(config, pipeline, source, live, ServiceNotifier(), handlers, build_switch(config))


def build_switch(config: DaemonConfig) -> control.DetectionSwitch:
    """The detection switch, as it was left before the restart (kept in the state dir)."""
    return control.DetectionSwitch(StateFile(config.service.state_dir / control.FILE_NAME))


def configuration_url(config: DaemonConfig) -> str | None:
    """The status page's address for Home Assistant's device page: the configured one, else
    http://<hostname>.local:<port>/ (or the bound address) when [http] listens beyond loopback."""
    if config.mqtt.homeassistant.configuration_url:
        return config.mqtt.homeassistant.configuration_url
    http = config.http
    if not http.enabled:
        return None
    if http.bind in ("0.0.0.0", "::", ""):
        host = f"{socket.gethostname().split('.')[0]}.local"  # Raspberry Pi OS answers mDNS (avahi) by default
    else:
        try:
            address = ipaddress.ip_address(http.bind)
        except ValueError:
            address = None
        if address is not None and address.is_loopback:
            return None  # only this machine can open it
        host = f"[{http.bind}]" if address is not None and address.version == 6 else http.bind
    return f"http://{host}:{http.port}/"


def attach_mqtt(daemon: Daemon) -> MqttPublisher:
    """Plug a started publisher into `daemon`: it receives every reading, sensing change and detection switch,
    adds its stats, and takes the switch's commands from its command topic."""
    config = daemon.config
    publisher = MqttPublisher(config.mqtt, config.device_id, daemon.classifier.labels,
                              lambda: daemon.classifier.sha256, stats_source=daemon.stats, live=daemon.live,
                              switch=daemon.switch, configuration_url=configuration_url(config),
                              retained_store=StateFile(config.service.state_dir / retained.FILE_NAME))
    daemon.switch.subscribe(publisher.detection_changed)
    daemon.sensing.listeners.append(publisher.sensing_changed)
    publisher.start()
    daemon.handlers.append(publisher.handle_reading)
    daemon.stats_providers.append(publisher.stats)
    return publisher


class App:
    """A whole device: the camera loop, displays, MQTT and the HTTP server, built from one config.

    Construction loads the model and opens the displays (each absent display is logged once and left off);
    `run` starts MQTT and the HTTP server, runs the camera loop until `stop` (a signal) or `max_frames`, and
    stops every started part, also when one fails to start.
    """

    def __init__(self, config: DaemonConfig):
        from emotion_edge.device.displays.manager import DisplayManager

        self.config = config
        pipeline = build_pipeline(config)
        self.live = LiveState(pipeline.classifier.labels)
        self.displays = DisplayManager(config.display, self.live, camera_source=config.camera.source)
        # The HDMI preview rides every Pi camera the source opens (None without one).
        source = build_source(config, camera_preview=self.displays.camera_preview)
        self.daemon = Daemon(config, pipeline, source, self.live, ServiceNotifier(),
                             [change_logger(pipeline.classifier.labels)], build_switch(config))
        if self.displays.status():
            self.daemon.stats_providers.append(lambda: {"displays": self.displays.status()})

    def stop(self) -> None:
        """Safe from a signal handler: ends the camera loop, and `run` then stops the rest."""
        self.daemon.stop()

    def request_reload(self) -> None:
        """Safe from a signal handler: the loop reloads the model at [model] path between frames."""
        self.daemon.request_reload()

    def run(self, max_frames: int = 0) -> dict:
        """Start every part, run the camera loop, stop every started part; returns the loop's final stats."""
        from emotion_edge.device.web.server import start_for_daemon

        config, daemon = self.config, self.daemon
        mqtt = web = None
        try:  # a part that fails to start (a bad [http] token, say) must not leave the started ones running
            # Connects in the background: a broker that is down at boot never holds up the camera; events spool meanwhile.
            mqtt = attach_mqtt(daemon) if config.mqtt.enabled else None
            # None when [http] is off or cannot listen (logged); the API follows the daemon's model across reloads.
            web = start_for_daemon(config, daemon.live, lambda: daemon.classifier.path)
            self.displays.start()
            return daemon.run(max_frames=max_frames)
        finally:
            if mqtt is not None:
                mqtt.close()  # ends open tracks, flushes briefly, publishes `stopped`; the rest stays spooled
            self.displays.stop()
            if web is not None:
                web.stop()
