"""Shared by bench/http_api.py and bench/preview_cost.py: the daemon's camera loop with its HTTP server, timed.

The loop is the daemon's own (`Daemon.run`) on `examples/demo.mp4` (640x480, one person) replayed as fast as it
decodes, with the shipped model and one LiteRT thread, like bench/preview.py; the HTTP server is the one
`emotion-edge run` starts (`start_for_daemon`), on a free loopback port.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import cv2

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig
from emotion_edge.device.daemon.app import build_daemon
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.web.config import HttpConfig
from emotion_edge.device.web.server import HttpServer, start_for_daemon

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.mp4"
# Load generators attached to a run: given the running server, a context manager that loads it while open.
Load = Callable[[HttpServer], ContextManager[None]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average " \
           f"{os.getloadavg()[0]:.1f} at start"


def demo_frame(index: int = 10) -> bytes:
    """One 640x480 frame of the demo clip with its one face, as the JPEG a phone would upload."""
    capture = cv2.VideoCapture(str(DEMO))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read frame {index} of {DEMO}")
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return jpeg.tobytes()


def http_config(**overrides) -> HttpConfig:
    return HttpConfig(**{"enabled": True, "port": free_port(), **overrides})


@dataclass(frozen=True)
class LoopRun:
    fps: float
    frames: int
    seconds: float


@contextlib.contextmanager
def nothing(_server: HttpServer) -> Iterator[None]:
    yield


def run_loop(frames: int, http: HttpConfig | None, load: Load = nothing, camera_fps: float = 0.0) -> LoopRun:
    """The camera loop for `frames` frames, with the HTTP server (when `http`) under `load`; its frame rate.

    `camera_fps` paces the replay like a real camera; 0 replays as fast as it decodes (the worst case for
    anything sharing the CPU with the loop).
    """
    config = DaemonConfig(camera=CameraConfig(source=str(DEMO), loop=True, fps=camera_fps or None,
                                                paced=bool(camera_fps)),
                          model=ModelConfig(path=packaged_model_path(), threads=1),
                          **({"http": http} if http is not None else {}))
    daemon = build_daemon(config)
    server = start_for_daemon(config, daemon.live) if http is not None else None
    if http is not None and server is None:
        raise SystemExit("the HTTP server did not start (see the log)")
    try:
        with (load(server) if server is not None else contextlib.nullcontext()):
            started = time.perf_counter()
            stats = daemon.run(max_frames=frames)
            elapsed = time.perf_counter() - started
    finally:
        if server is not None:
            server.stop()
    return LoopRun(stats["frames"] / elapsed, stats["frames"], elapsed)


class ChildLoad:
    """Load generated from a spawned process at the lowest priority, as long as the context is open.

    Real clients (a phone, a browser) run elsewhere: they take neither the device's GIL nor, ideally, its CPU.
    In a process of its own at nice 19 the bench's load generator takes no GIL and yields the CPU. `worker(url,
    ready, stop, results, *args)` (a module-level function, for spawn) releases `ready` once per client when warm
    and puts one result on `results` after `stop` is set.
    """

    def __init__(self, worker: Callable[..., None], clients: int, *args: object):
        self.worker, self.clients, self.args = worker, clients, args
        self.result: object = None
        self.seconds = 0.0

    @contextlib.contextmanager
    def load(self, url: str) -> Iterator[None]:
        context = multiprocessing.get_context("spawn")
        ready, stop, results = context.Semaphore(0), context.Event(), context.Queue()
        process = context.Process(target=_niced_worker, daemon=True,
                                  args=(self.worker, url, ready, stop, results, *self.args))
        process.start()
        for _ in range(self.clients):
            if not ready.acquire(timeout=120):
                raise SystemExit(f"bench: the load generator {self.worker.__name__} did not start")
        started = time.perf_counter()
        try:
            yield
        finally:
            stop.set()
            self.result = results.get(timeout=120)
            process.join(10)
            self.seconds = time.perf_counter() - started


def _niced_worker(worker: Callable[..., None], *args: object) -> None:
    os.nice(19)
    worker(*args)
