"""The camera loop that turns frames into tracked emotions, forever (`emotion-edge run`, built by `daemon.app`).

The loop never blocks for long: reads are bounded (so a stop request, and later
the systemd watchdog, are served even when the camera hangs), live sources keep
only their newest frame (stale ones are dropped and counted, from gaps in the
frame numbers), and a failing camera is reopened with backoff by
ReopeningSource. Consumers of readings (MQTT, displays) plug in as callbacks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from emotion_edge.device.config import DaemonConfig
from emotion_edge.device.daemon.control import DetectionSwitch
from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.daemon.sensing import SensingMonitor, SensingState
from emotion_edge.device.daemon.service import ServiceNotifier, StatusFile
from emotion_edge.device.logs import fields_text
from emotion_edge.device.model.reload import load_replacement
from emotion_edge.device.pipeline import FacePipeline, FrameReading
from emotion_edge.device.sources import (
    FrameSource,
    SourceExhausted,
)

log = logging.getLogger(__name__)

ReadingHandler = Callable[[FrameReading], None]
READ_TIMEOUT_S = 0.5


@dataclass
class LoopCounters:
    frames: int = 0
    dropped: int = 0
    last_index: int = -1
    started: float = field(default_factory=time.monotonic)

    def count(self, index: int) -> None:
        if self.last_index >= 0 and index > self.last_index + 1:
            self.dropped += index - self.last_index - 1
        self.last_index = index
        self.frames += 1


def change_logger(labels: tuple[str, ...]) -> ReadingHandler:
    """A handler that logs what a person watching would want to know: faces arriving, emotions changing, faces leaving."""

    def handle(reading: FrameReading) -> None:
        for face in reading.faces:
            if face.state.changed:
                log.info("track %d %s: %s %.0f%%", face.track_id, "appeared" if face.is_new else "changed",
                         labels[face.state.dominant], 100 * face.state.confidence,
                         extra={"track": face.track_id, "emotion": labels[face.state.dominant],
                                "confidence": round(face.state.confidence, 3), "frame": reading.frame_index})
        for track_id in reading.ended_tracks:
            log.info("track %d left", track_id, extra={"track": track_id, "frame": reading.frame_index})

    return handle


class Daemon:
    """The camera loop. It is given its parts (see `daemon.app`, the composition root) and builds none."""

    def __init__(self, config: DaemonConfig, pipeline: FacePipeline, source: FrameSource, live: LiveState,
                 notifier: ServiceNotifier, handlers: list[ReadingHandler] | None = None,
                 switch: DetectionSwitch | None = None):
        self.config = config
        self.pipeline = pipeline
        self.classifier = pipeline.classifier
        self.source = source
        self.handlers = list(handlers or [])
        # Extra stats fields from plugged-in parts (MQTT spool depth, ...), merged into stats().
        self.stats_providers: list[Callable[[], dict]] = []
        self.live = live
        self.counters = LoopCounters()
        self.stop_event = threading.Event()
        self.notifier = notifier
        self.status_file = StatusFile(config.service.status_file, config.service.status_interval_s)
        self.reload_requested = threading.Event()  # set by SIGHUP; the loop reloads between frames
        self.reload_error: dict | None = None  # the last refused model and why, for the deploy's health check
        self.ready = False
        self.last_frame_at: float | None = None  # wall clock, comparable with the deploy's activation time
        self.model_loaded_at = time.time()
        # The detection switch (privacy mode) and whether the device is sensing; parts that publish the latter
        # add themselves to `sensing.listeners`.
        self.switch = switch if switch is not None else DetectionSwitch()
        self.sensing = SensingMonitor(config.camera.stall_timeout_s)
        self.sensing.listeners.append(self._sensing_changed)
        self.paused = False

    def stats(self) -> dict:
        timer = self.pipeline.timer
        elapsed = time.monotonic() - self.counters.started
        source_stats = getattr(self.source, "stats", None)
        stats = {
            "fps": round(self.counters.frames / elapsed, 2) if elapsed > 0 else 0.0,
            "frames": self.counters.frames,
            "dropped_frames": self.counters.dropped,
            "stage_ms": {k: round(v, 2) for k, v in timer.ms.items()},
            "uptime_s": round(elapsed, 1),
            "model_sha256": self.classifier.sha256,
            "source": vars(source_stats) if source_stats is not None else {},
            "sensing": self.sensing.state,
            "detection": "on" if self.switch.enabled else "off",
        }
        for provider in self.stats_providers:
            stats.update(provider())
        return stats

    def step(self) -> FrameReading | None:
        """One frame through the pipeline and out to the handlers; None when no frame came in time."""
        started = time.perf_counter()
        frame = self.source.read(timeout=READ_TIMEOUT_S)
        if frame is None:
            return None
        # The read's time less what it spent waiting (a pacer's sleep, the camera's frame interval): at 30 fps the
        # wait is most of it, and would hide what capturing costs.
        read_s = time.perf_counter() - started
        waited_s = min(frame.waited_s, read_s)
        self.pipeline.timer.record("wait", waited_s)
        self.pipeline.timer.record("capture", read_s - waited_s)
        self.counters.count(frame.index)
        # Before the handlers: subscribers learn the device sees again before the events of what it sees.
        self.sensing.observe(frame=True, paused=False)
        reading = self.pipeline.process(frame)
        started = time.perf_counter()
        self.live.update_frame(frame, reading)
        for handler in self.handlers:
            handler(reading)
        self.pipeline.timer.record("publish", time.perf_counter() - started)
        return reading

    def run(self, max_frames: int = 0) -> dict:
        """Loop until stop() (a signal), `max_frames`, or the end of a finite source; returns the final stats."""
        next_stats = time.monotonic() + self.config.pipeline.stats_interval_s
        with self._camera():
            while not self.stop_event.is_set():
                if self.follow_switch():
                    self.stop_event.wait(READ_TIMEOUT_S)  # paused: the camera is closed, nothing to read
                    reading = None
                else:
                    try:
                        reading = self.step()
                    except SourceExhausted:
                        log.info("source ended", extra={"source": getattr(self.source, "name", "")})
                        break
                self.service_tick(reading)
                if reading is None:  # a frame was observed in step()
                    self.sensing.observe(frame=False, paused=self.paused,
                                         camera_open=getattr(self.source, "is_connected", True))
                if max_frames and self.counters.frames >= max_frames:
                    break
                if time.monotonic() >= next_stats:
                    stats = self.stats()
                    self.live.update(stats=stats)
                    log.info("stats %s", fields_text(stats), extra=stats)
                    next_stats += self.config.pipeline.stats_interval_s
        final = self.stats()
        log.info("stopped %s", fields_text(final), extra=final)
        return final

    @contextlib.contextmanager
    def _camera(self) -> Iterator[None]:
        """The camera, open for the loop unless detection is off: a device switched off is never opened."""
        self.paused = not self.switch.enabled
        if self.paused:
            self._announce_paused()
        else:
            self.source.open()
        try:
            yield
        finally:
            self.source.close()

    def follow_switch(self) -> bool:
        """Close the camera when detection was switched off, reopen it when switched on; True while paused."""
        if self.switch.enabled == (not self.paused):
            return self.paused
        self.paused = not self.switch.enabled
        if self.paused:
            self.source.close()  # privacy: not one more frame is captured, let alone processed
            self._announce_paused()
        else:
            self.source.open()
        return self.paused

    def _announce_paused(self) -> None:
        if not self.ready:  # systemd waits for READY=1: a device that starts paused is up, and says so
            self.ready = True
            self.notifier.ready("detection switched off")

    def _sensing_changed(self, state: SensingState) -> None:
        """A room no longer seen is shown empty, not frozen at its last reading."""
        if state in ("paused", "camera_down"):
            self.pipeline.forget_faces()
        if state != "sensing":
            self.live.clear_view()
        self.live.update(sensing=state)
        log.log(logging.WARNING if state == "camera_down" else logging.INFO, "sensing: %s", state,
                extra={"sensing": state})

    def stop(self) -> None:
        self.stop_event.set()
        self.notifier.stopping()

    def request_reload(self) -> None:
        """Safe from a signal handler: only sets a flag, the loop does the loading."""
        self.reload_requested.set()

    def service_tick(self, reading: FrameReading | None) -> None:
        """After every loop iteration: readiness, the watchdog heartbeat, a pending reload, the status file."""
        if reading is not None:
            self.last_frame_at = time.time()
            if not self.ready:
                self.ready = True
                self.notifier.ready(self.status_line())
                log.info("ready: model loaded and first frame processed", extra={"model_sha256": self.classifier.sha256})
        self.notifier.heartbeat()
        if self.reload_requested.is_set():
            self.reload_requested.clear()
            self.reload_model()
        if self.status_file.due():
            self.status_file.write(self.service_status())
            self.notifier.status(self.status_line())

    def reload_model(self) -> bool:
        """Swap in the model now at config.model.path if it validates; otherwise keep the running one."""
        target = self.config.model.path.resolve()
        if target == self.classifier.path:
            log.info("reload: %s is already the running model", target)
            return True
        self.notifier.reloading()
        try:
            classifier = load_replacement(target, self.config.model.threads, self.classifier)
        except (ValueError, OSError) as exc:
            self.reload_error = {"target": str(target), "reason": str(exc), "at": time.time()}
            log.error("reload refused, keeping model %s: %s", self.classifier.sha256[:12], exc,
                      extra={"target": str(target), "kept_sha256": self.classifier.sha256})
            ok = False
        else:
            old, self.classifier = self.classifier.sha256, classifier
            self.pipeline.use_classifier(classifier)
            self.reload_error = None
            self.model_loaded_at = time.time()
            log.info("reloaded model %s (was %s)", classifier.sha256[:12], old[:12],
                     extra={"model_sha256": classifier.sha256, "previous_sha256": old, "path": str(target)})
            ok = True
        if self.ready:  # ends RELOADING=1; before the first frame, READY=1 is still the first frame's to send
            self.notifier.ready(self.status_line())
        self.status_file.write(self.service_status())  # at once: a deploy is waiting for exactly this
        return ok

    def status_line(self) -> str:
        reading = self.live.snapshot().reading
        faces = len(reading.faces) if reading else 0
        state = ("detection switched off" if self.paused else "running" if self.ready
                 else "waiting for the first camera frame")
        return (f"{state}; {self.stats()['fps']:.1f} fps, {faces} face(s), model {self.classifier.sha256[:12]}"
                + ("; last reload refused" if self.reload_error else ""))

    def service_status(self) -> dict:
        """The status file's content (see `emotion-edge device-model health`)."""
        return {"pid": os.getpid(), "updated_at": time.time(), "ready": self.ready,
                "model_sha256": self.classifier.sha256, "model_path": str(self.classifier.path),
                "model_loaded_at": self.model_loaded_at,
                "frames": self.counters.frames, "last_frame_at": self.last_frame_at,
                "reload_error": self.reload_error}
