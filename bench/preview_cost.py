"""What the network preview costs the camera loop: its frames per second with nobody watching and with MJPEG viewers.

Settings, each a `Daemon.run` of `--frames` frames (see daemon_http.py):

- "no server": `[http]` off;
- "server, no viewer": the server up and idle (the status page's baseline);
- "N viewer(s)": N clients reading /preview.mjpg for the whole run, as browsers showing the status page do.

Runs alternate between settings so a background load drifting during the bench hits all alike; each row is the
median of `--repeats` runs, and the ratio is the median of each round's ratio to that round's "no server" run.
"encoder CPU" is the CPU time the shared encoder spent drawing and encoding, per second of run: the preview's
own cost, which the background load does not blur. The viewers run in a process of their own at nice 19, as
browsers elsewhere take none of the device's CPU. Acceptance: one viewer may cost at most 10% of the frames
per second.

    python bench/preview_cost.py [--frames 300] [--repeats 3] [--viewers 1 3] [--preview-fps 10]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import threading
from typing import Iterator

import httpx
from daemon_http import DEMO, ChildLoad, LoopRun, http_config, machine, run_loop

from emotion_edge.device.web.server import HttpServer

ACCEPTED_COST = 0.10


def watching_clients(url: str, ready, stop, results, clients: int) -> None:
    """ChildLoad worker: `clients` threads reading the MJPEG stream until stopped; puts the frames received."""
    lock, frames = threading.Lock(), [0]

    def watch() -> None:
        with httpx.Client(timeout=10) as client, client.stream("GET", url) as stream:
            ready.release()
            for chunk in stream.iter_bytes():
                with lock:
                    frames[0] += chunk.count(b"--frame\r\n")
                if stop.is_set():
                    return

    threads = [threading.Thread(target=watch) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(frames[0])


class Viewers:
    """N viewers of /preview.mjpg while the context is open; the frames they got and the encoder's CPU time."""

    def __init__(self, count: int):
        self.count = count
        self.child = ChildLoad(watching_clients, count, count)
        self.frames = 0
        self.encoder_cpu_s = 0.0

    @contextlib.contextmanager
    def load(self, server: HttpServer) -> Iterator[None]:
        encoder = server.app.state.preview.encoder
        if self.count == 0:
            yield
            return
        with self.child.load(f"{server.url}/preview.mjpg"):
            yield
            server.stopping.set()  # ends the streams, so the viewers' reads return
        self.frames = self.child.result
        self.encoder_cpu_s = encoder.cpu_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--preview-fps", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the daemon's start-up notes would drown the table
    header = machine()
    run_loop(30, None)  # warm-up: caches, lazy imports, the first model load
    settings = {"no server": None, "server, no viewer": 0, **{f"{n} viewer(s)": n for n in args.viewers}}
    runs: dict[str, list[tuple[LoopRun, Viewers | None]]] = {name: [] for name in settings}
    for _ in range(args.repeats):
        for name, viewers in settings.items():
            if viewers is None:
                runs[name].append((run_loop(args.frames, None), None))
                continue
            watching = Viewers(viewers)
            runs[name].append((run_loop(args.frames, http_config(preview_fps=args.preview_fps), watching.load), watching))
    base_runs = [r for r, _ in runs["no server"]]
    med = statistics.median
    print(f"# preview cost: {args.frames} frames of {DEMO.name} per run, median of {args.repeats} alternating runs, "
          f"preview at <= {args.preview_fps:g} fps")
    print(f"# {header}")
    print("| setting | pipeline fps (median) | runs | ratio (median of rounds) | preview frames / s per viewer "
          "| encoder CPU |")
    print("|---|---|---|---|---|---|")
    ratios = {name: med(r.fps / b.fps for (r, _), b in zip(results, base_runs)) for name, results in runs.items()}
    for name, results in runs.items():
        each = " / ".join(f"{r.fps:.0f}" for r, _ in results)
        per_viewer = med(v.frames / r.seconds / max(1, v.count) if v else 0.0 for r, v in results)
        busy = med(1000 * v.encoder_cpu_s / r.seconds if v else 0.0 for r, v in results)
        print(f"| {name} | {med(r.fps for r, _ in results):.1f} | {each} | {ratios[name]:.3f} | {per_viewer:.1f} "
              f"| {busy:.1f} ms/s |")
    one = f"{args.viewers[0]} viewer(s)"
    ratio = ratios[one]
    passed = ratio >= 1 - ACCEPTED_COST
    print(f"\n{'PASS' if passed else 'FAIL'}: with {one} the pipeline keeps {ratio:.1%} of its frame rate "
          f"(acceptance: >= {1 - ACCEPTED_COST:.0%})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
