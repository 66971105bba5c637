"""The analyze API under load: requests per second and latency for one 640x480 image with one face, and the camera
loop's frame rate while the API is under that load.

`--clients` threads (in a process of their own, like remote clients) each POST the same JPEG (a frame of
examples/demo.mp4, one face) to /api/v1/analyze over loopback, back to back, with the default `[http]` bounds (one analysis at a time; the queue sized to the clients,
so nobody gets 503). Settings, alternated `--repeats` times (medians reported; see daemon_http.py):

- "API alone": `emotion-edge serve` (no camera), loaded for `--seconds`;
- "camera loop alone": `Daemon.run` of `--frames` frames with the server up and idle;
- "camera loop + API load": the same run while the clients load the API.

    python bench/http_api.py [--clients 1 4] [--frames 300] [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import threading
import time
from typing import Iterator

import httpx
from daemon_http import ChildLoad, demo_frame, free_port, http_config, machine, run_loop

from emotion_edge.device.config import DaemonConfig, ModelConfig
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.web.server import HttpServer, build_server


def _client(url: str, image: bytes, ready, stop, lock: threading.Lock, latencies: list[float],
            statuses: dict[int, int]) -> None:
    with httpx.Client(timeout=60) as client:
        client.post(url, content=image)  # connected and warm before the measured window opens
        ready.release()
        while not stop.is_set():
            started = time.perf_counter()
            response = client.post(url, content=image, headers={"Content-Type": "image/jpeg"})
            elapsed = time.perf_counter() - started
            if response.status_code == 200 and len(response.json()["faces"]) != 1:
                raise SystemExit("bench/http_api.py: the API did not find the one face")
            with lock:
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    latencies.append(elapsed)


def posting_clients(url: str, ready, stop, results, image: bytes, clients: int) -> None:
    """ChildLoad worker: `clients` threads posting `image` back to back; puts (latencies, statuses)."""
    lock, latencies, statuses = threading.Lock(), [], {}
    threads = [threading.Thread(target=_client, args=(url, image, ready, stop, lock, latencies, statuses))
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((latencies, statuses))


class ApiLoad:
    """`clients` clients posting `image` to the analyze API while the context is open."""

    def __init__(self, image: bytes, clients: int):
        self.child = ChildLoad(posting_clients, clients, image, clients)
        self.latencies_s: list[float] = []
        self.statuses: dict[int, int] = {}

    @contextlib.contextmanager
    def load(self, server: HttpServer) -> Iterator[None]:
        with self.child.load(f"{server.url}/api/v1/analyze"):
            yield
        self.latencies_s, self.statuses = self.child.result

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.child.seconds if self.child.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def api_alone(image: bytes, clients: int, seconds: float) -> ApiLoad:
    config = DaemonConfig(model=ModelConfig(path=packaged_model_path(), threads=1),
                          http=http_config(port=free_port(), max_queued=clients))
    load = ApiLoad(image, clients)
    with build_server(config, None) as server, load.load(server):
        time.sleep(seconds)
    return load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--camera-fps", type=float, default=0.0,
                        help="pace the replayed camera like a real one (0: as fast as it decodes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    header = machine()
    image = demo_frame()
    run_loop(30, None)  # warm-up
    idle_fps: list[float] = []
    alone: dict[int, list[ApiLoad]] = {c: [] for c in args.clients}
    loaded: dict[int, list[tuple[ApiLoad, float]]] = {c: [] for c in args.clients}
    for _ in range(args.repeats):
        idle_fps.append(run_loop(args.frames, http_config(), camera_fps=args.camera_fps).fps)
        for clients in args.clients:
            alone[clients].append(api_alone(image, clients, args.seconds))
            load = ApiLoad(image, clients)
            run = run_loop(args.frames, http_config(max_queued=clients), load.load, camera_fps=args.camera_fps)
            loaded[clients].append((load, run.fps))
    base = statistics.median(idle_fps)
    print(f"# analyze API: one 640x480 JPEG ({len(image):,} bytes, one face), loopback, max_concurrent 1, "
          f"median of {args.repeats} alternating runs")
    pace = f"paced at {args.camera_fps:g} fps" if args.camera_fps else "as fast as it decodes"
    print(f"# {header}; camera loop: {args.frames} frames of demo.mp4 per run, {pace}, model threads 1")
    print("| setting | clients | requests / s | p50 ms | p95 ms | non-200 | camera loop fps | fps ratio |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| camera loop alone (server idle) | 0 | | | | | {base:.1f} | 1.000 |")
    med = statistics.median
    for clients in args.clients:
        loads = alone[clients]
        bad = sum(n for load in loads for s, n in load.statuses.items() if s != 200)
        print(f"| API alone (`serve`) | {clients} | {med(load.rps for load in loads):.1f} | {med(load.percentile_ms(0.5) for load in loads):.0f} | "
              f"{med(load.percentile_ms(0.95) for load in loads):.0f} | {bad} | | |")
    for clients in args.clients:
        pairs = loaded[clients]
        fps = med(f for _, f in pairs)
        bad = sum(n for load, _ in pairs for s, n in load.statuses.items() if s != 200)
        print(f"| camera loop + API load | {clients} | {med(load.rps for load, _ in pairs):.1f} | "
              f"{med(load.percentile_ms(0.5) for load, _ in pairs):.0f} | {med(load.percentile_ms(0.95) for load, _ in pairs):.0f} | "
              f"{bad} | {fps:.1f} | {fps / base:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
