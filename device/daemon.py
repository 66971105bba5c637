"""`emotion-edge run`: the camera loop that turns frames into tracked emotions, forever.

The loop never blocks for long: reads are bounded (so a stop request, and later
the systemd watchdog, are served even when the camera hangs), live sources keep
only their newest frame (stale ones are dropped and counted, from gaps in the
frame numbers), and a failing camera is reopened with backoff by
ReopeningSource. Consumers of readings (MQTT, displays) plug in as callbacks.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from emotion_edge.device.classifier import EmotionClassifier
from emotion_edge.device.config import DaemonConfig
from emotion_edge.device.detection import make_detector
from emotion_edge.device.live import LiveState
from emotion_edge.device.pipeline import FacePipeline, FrameReading
from emotion_edge.device.sources import (
    Backoff, FrameSource, ReopeningSource, SourceExhausted, SourceOptions, open_source,
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


def build_source(config: DaemonConfig) -> ReopeningSource:
    camera = config.camera
    options = SourceOptions(width=camera.width, height=camera.height, fps=camera.fps, loop=camera.loop,
                            lores_width=camera.lores_width)
    return ReopeningSource(
        lambda: open_source(camera.source, options),
        Backoff(initial=camera.reopen_initial_s, max_delay=camera.reopen_max_s),
        stall_timeout=camera.stall_timeout_s,
        name=camera.source,
    )


class Daemon:
    def __init__(self, config: DaemonConfig, source: FrameSource | None = None,
                 handlers: list[ReadingHandler] | None = None):
        self.config = config
        self.classifier = EmotionClassifier(config.model.path, threads=config.model.threads)
        self.pipeline = FacePipeline(make_detector(config.detector), self.classifier, config.pipeline,
                                     config.tracker, config.smoothing)
        self.source = source if source is not None else build_source(config)
        self.handlers = list(handlers or [])
        # Extra stats fields from plugged-in parts (MQTT spool depth, ...), merged into stats().
        self.stats_providers: list[Callable[[], dict]] = []
        self.live = LiveState(self.classifier.labels)
        self.counters = LoopCounters()
        self.stop_event = threading.Event()

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
        self.pipeline.timer.record("capture", time.perf_counter() - started)
        self.counters.count(frame.index)
        reading = self.pipeline.process(frame)
        self.live.update_frame(frame, reading)
        started = time.perf_counter()
        for handler in self.handlers:
            handler(reading)
        self.pipeline.timer.record("publish", time.perf_counter() - started)
        return reading

    def run(self, max_frames: int = 0) -> dict:
        """Loop until stop() (a signal), `max_frames`, or the end of a finite source; returns the final stats."""
        next_stats = time.monotonic() + self.config.pipeline.stats_interval_s
        with self.source:
            while not self.stop_event.is_set():
                try:
                    self.step()
                except SourceExhausted:
                    log.info("source ended", extra={"source": getattr(self.source, "name", "")})
                    break
                if max_frames and self.counters.frames >= max_frames:
                    break
                if time.monotonic() >= next_stats:
                    stats = self.stats()
                    self.live.update(stats=stats)
                    log.info("stats", extra=stats)
                    next_stats += self.config.pipeline.stats_interval_s
        final = self.stats()
        log.info("stopped", extra=final)
        return final

    def stop(self) -> None:
        self.stop_event.set()
