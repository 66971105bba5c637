"""The network preview: an MJPEG stream of the annotated camera view, the live state as JSON, and a status page.

The camera loop never waits for a viewer: it publishes a snapshot per frame to LiveState, and the stream
reads the newest one at its own bounded rate. `SharedEncoder` draws and encodes a snapshot once, however many
viewers watch, and only while someone does, so an unwatched preview costs the loop nothing.
"""

from __future__ import annotations

import json
import threading
import time
from importlib import resources
from typing import AsyncIterator, Callable

import anyio
import anyio.to_thread
import numpy as np
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from emotion_edge.device.daemon.live import LiveState, Snapshot
from emotion_edge.device.imaging import encode_image
from emotion_edge.device.overlay import annotate_snapshot
from emotion_edge.device.web.priority import lower_thread_priority

BOUNDARY = "frame"


class SharedEncoder:
    """The newest snapshot as an annotated JPEG, re-encoded about `fps` times a second, shared by all viewers."""

    # Viewers poll once per interval, each with its own jitter; a frame due a hair early must not wait a whole
    # interval more (which would halve the rate), so a new frame is encoded once 3/4 of an interval has passed.
    EARLY = 0.75

    def __init__(self, live: LiveState, fps: float, quality: int, clock: Callable[[], float] = time.monotonic):
        self.live = live
        self.interval_s = 1.0 / fps
        self.quality = quality
        self.clock = clock
        self.encodes = 0  # for tests and benches: how many JPEGs were made ...
        self.cpu_s = 0.0  # ... and the CPU time spent drawing and encoding them
        self._lock = threading.Lock()
        self._sequence = -1
        self._jpeg: bytes | None = None
        self._shape: tuple[int, ...] | None = None  # of the last picture, for the dark one after a cleared view
        self._encoded_at = -float("inf")

    def latest(self) -> tuple[int, bytes] | None:
        """(snapshot sequence, JPEG) of the newest frame, encoding it if it is new and the rate allows; None before any frame."""
        with self._lock:  # the second viewer waits for the first's encode and then reuses it
            snapshot = self.live.snapshot()
            now = self.clock()
            if snapshot.sequence != self._sequence and now - self._encoded_at >= self.EARLY * self.interval_s:
                lower_thread_priority()  # a preview frame can wait; the camera loop cannot
                started = time.thread_time()
                picture = annotate_snapshot(snapshot, self.live.labels)
                if picture is None and self._shape is not None:
                    # The view was cleared (camera lost, detection switched off): the stream goes dark rather
                    # than keep showing the last image.
                    picture = np.zeros(self._shape, np.uint8)
                if picture is not None:
                    self._shape = picture.shape
                    self._jpeg = encode_image(picture, ".jpg", self.quality)
                    self._sequence, self._encoded_at = snapshot.sequence, now
                    self.encodes += 1
                self.cpu_s += time.thread_time() - started
            return (self._sequence, self._jpeg) if self._jpeg is not None else None


def mjpeg_part(jpeg: bytes) -> bytes:
    # The boundary follows each image rather than preceding the next: browsers show a part only once they see
    # the boundary that ends it, so this shows every frame at once instead of one frame late.
    return (f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg
            + f"\r\n--{BOUNDARY}\r\n".encode())


def state_json(snapshot: Snapshot, labels: tuple[str, ...], device_id: str) -> dict:
    """What the status page shows: the room, each face, the daemon's stats, MQTT and the last event published."""
    reading = snapshot.reading
    faces = [] if reading is None else [
        {"track_id": f.track_id, "emotion": labels[f.state.dominant], "confidence": round(f.state.confidence, 4),
         "box_normalized": dict(zip("xywh", (round(v, 5) for v in f.box_norm)))}
        for f in reading.faces]
    return {
        "device_id": device_id,
        "sequence": snapshot.sequence,
        "frame_index": reading.frame_index if reading is not None else None,
        "room": snapshot.room.to_dict() if snapshot.room is not None else None,
        "faces": faces,
        "stats": snapshot.stats,
        "mqtt": snapshot.mqtt,
        "sensing": snapshot.sensing,
        "last_event": snapshot.last_event,
    }


class Preview:
    def __init__(self, live: LiveState, device_id: str, fps: float, quality: int, stopping: threading.Event):
        self.live = live
        self.device_id = device_id
        self.encoder = SharedEncoder(live, fps, quality)
        self.stopping = stopping  # set when the server stops, so open streams end instead of holding shutdown
        self.page = resources.files(__package__).joinpath("status.html").read_text(encoding="utf-8")

    async def _frames(self) -> AsyncIterator[bytes]:
        yield f"--{BOUNDARY}\r\n".encode()
        sent = -1
        tick = time.monotonic()
        while not self.stopping.is_set():
            latest = await anyio.to_thread.run_sync(self.encoder.latest)
            if latest is not None and latest[0] != sent:
                sent = latest[0]
                yield mjpeg_part(latest[1])
            # Ticks on a fixed schedule, so encoding and sending time does not lower the rate.
            now = time.monotonic()
            tick = max(tick + self.encoder.interval_s, now)
            await anyio.sleep(tick - now)

    async def stream(self, request: Request) -> Response:
        return StreamingResponse(self._frames(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    async def state(self, request: Request) -> Response:
        body = state_json(self.live.snapshot(), self.live.labels, self.device_id)
        # default=str: stats come from plug-ins (MQTT, ...); an odd value must not turn the page into a 500.
        return Response(json.dumps(body, default=str), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    async def timeline(self, request: Request) -> Response:
        return Response(json.dumps(self.live.timeline.to_dict()), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    async def status_page(self, request: Request) -> Response:
        return HTMLResponse(self.page, headers={"Cache-Control": "no-store"})

    def routes(self) -> list[Route]:
        return [
            Route("/", self.status_page, methods=["GET"]),
            Route("/preview.mjpg", self.stream, methods=["GET"]),
            Route("/api/v1/state", self.state, methods=["GET"]),
            Route("/api/v1/timeline", self.timeline, methods=["GET"]),
        ]
