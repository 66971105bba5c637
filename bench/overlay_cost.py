"""What one network-preview frame costs to draw: the overlay renderer and compositor, against a JPEG encode.

The MJPEG stream's shared encoder does, per frame, `annotate_snapshot` (render the RGBA overlay, lay it over
the camera frame) and a JPEG encode. This times both on a live snapshot of the daemon's loop on
`examples/demo.mp4` (640x480, its one face tracked, the HUD line drawn), together with the compositor as it
was before it blended only the rectangles drawn in (kept below as `previous_composite`: it blended the
bounding box of every drawn pixel, HUD corner to bar chart, in numpy uint16 with a division), so the
speed-up is measured in the same run.

Each round times every row over `--iterations` frames, in turn, so a background load drifting during the
bench hits all rows alike. The table gives each row's median over `--rounds` rounds in CPU milliseconds per
frame (thread CPU time: what the preview takes from the camera loop's CPU, and less blurred by other work
than wall time) and its ratio to the JPEG encode of the same round (median of rounds). The bench first
checks that both compositors give the same picture, pixel for pixel.

    python bench/overlay_cost.py [--rounds 15] [--iterations 40]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig
from emotion_edge.device.daemon.app import build_daemon
from emotion_edge.device.daemon.live import Snapshot
from emotion_edge.device.imaging import encode_image
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.device.overlay import Hud, annotate_snapshot, composite, snapshot_canvas, snapshot_overlay
from emotion_edge.device.web.config import HttpConfig

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.mp4"
HUD = Hud(fps=14.8, mqtt="connected")  # the corner line a running daemon shows
BASELINE = "JPEG encode (baseline)"


def previous_composite(image_bgr: np.ndarray, overlay_rgba: np.ndarray) -> np.ndarray:
    """device/overlay.py's composite before dirty rectangles, as it was: the speed-up's reference."""
    out = image_bgr.copy()
    alpha = overlay_rgba[:, :, 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return out
    region = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    a = alpha[region][:, :, None].astype(np.uint16)
    color = overlay_rgba[region][:, :, 2::-1].astype(np.uint16)
    out[region] = ((out[region].astype(np.uint16) * (255 - a) + color * a + 127) // 255).astype(np.uint8)
    return out


def live_snapshot(frames: int = 40) -> tuple[Snapshot, tuple[str, ...]]:
    """The daemon's snapshot after `frames` frames of the demo clip (a real frame with a tracked face) and the
    model's labels."""
    daemon = build_daemon(DaemonConfig(camera=CameraConfig(source=str(DEMO), paced=False),
                                 model=ModelConfig(path=packaged_model_path(), threads=1)))
    daemon.run(max_frames=frames)
    snapshot = daemon.live.snapshot()
    if snapshot.frame is None or snapshot.reading is None or not snapshot.reading.faces:
        raise SystemExit(f"bench/overlay_cost.py: no face tracked in the first {frames} frames of {DEMO.name}")
    return snapshot, daemon.live.labels


def cpu_ms(work: Callable[[], object], iterations: int) -> float:
    """Thread CPU milliseconds per call of `work`."""
    started = time.thread_time()
    for _ in range(iterations):
        work()
    return 1000 * (time.thread_time() - started) / iterations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=40, help="frames per row and round")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the daemon's start-up notes would drown the table
    snapshot, labels = live_snapshot()
    image = snapshot.frame.image
    size = (image.shape[1], image.shape[0])
    canvas = snapshot_canvas(snapshot, labels, size, HUD)
    picture = annotate_snapshot(snapshot, labels, HUD)
    if not np.array_equal(picture, previous_composite(image, canvas.pixels)):
        raise SystemExit("bench/overlay_cost.py: the compositor now draws a different picture than before")
    quality = HttpConfig.jpeg_quality
    rows: dict[str, Callable[[], object]] = {
        BASELINE: lambda: encode_image(picture, ".jpg", quality),
        "render overlay": lambda: snapshot_canvas(snapshot, labels, size, HUD),
        "composite, before (bounding box of all drawn)": lambda: previous_composite(image, canvas.pixels),
        "composite, now (rectangles drawn in)": lambda: composite(image, canvas.pixels, canvas.dirty),
        "annotate_snapshot, before (render + composite)":
            lambda: previous_composite(image, snapshot_overlay(snapshot, labels, size, HUD)),
        "annotate_snapshot, now": lambda: annotate_snapshot(snapshot, labels, HUD),
    }
    for work in rows.values():  # warm-up: first-call allocations and lazy initialisation
        work()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, work in rows.items():
            times[name].append(cpu_ms(work, args.iterations))
    med = statistics.median
    drawn = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in canvas.dirty) / (size[0] * size[1])
    print(f"# overlay cost: one {size[0]}x{size[1]} frame of {DEMO.name} with {len(snapshot.reading.faces)} face(s) "
          f"and the HUD, JPEG quality {quality}; median of {args.rounds} alternating rounds "
          f"of {args.iterations} frames")
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.1f} at start; {len(canvas.dirty)} rectangles drawn in, {drawn:.1%} of the frame")
    print("| per frame | CPU ms (median) | ratio to JPEG encode |")
    print("|---|---|---|")
    for name, measured in times.items():
        ratio = med(t / b for t, b in zip(measured, times[BASELINE]))
        print(f"| {name} | {med(measured):.2f} | {ratio:.2f} |")
    before, now = times["annotate_snapshot, before (render + composite)"], times["annotate_snapshot, now"]
    print(f"\nannotate_snapshot is {med(b / n for b, n in zip(before, now)):.1f}x faster than before "
          f"(median of rounds); same pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
