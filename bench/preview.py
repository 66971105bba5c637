"""What the displays cost the camera loop: its frames per second with no display, and with the HDMI preview and OLED.

The loop is the daemon's own (`Daemon.run`: read, detect, track, classify,
smooth, publish to LiveState) on `examples/demo.mp4` replayed as fast as it
decodes, with the shipped model. "displays" adds, at their configured rates and
on their own threads as in `emotion-edge run`:

- the HDMI preview: the overlay renderer at the Pi camera's 1280x720 `main` size
  (boxes mapped from the 640x480 detection image) handed to `set_overlay` of a
  sink that copies it, as picamera2's DRM preview does (off a Pi there is no
  picamera2, so the sink stands in for it; the camera image itself is drawn by
  picamera2's own event loop on a Pi and never passes through our process);
- the OLED: the status screen rendered and sent to luma's `dummy` device.

Runs come in back-to-back pairs (one without, one with the displays; the order
alternates from pair to pair), and the verdict is the median of the pairs'
fps ratios: on a shared machine the background load drifts from minute to
minute, and a pair sees nearly the same load on both sides, which medians of
separate runs do not. "display threads CPU" is the CPU time the display
threads spent in their updates per second of run: what they take from the
pipeline on a machine with no spare core.
Acceptance: the displays may cost at most 10% of the frames per second.

    python bench/preview.py [--frames 200] [--repeats 9] [--hdmi-fps 10] [--oled-hz 2]
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

import numpy as np

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig
from emotion_edge.device.daemon.app import build_daemon
from emotion_edge.device.displays.config import DisplayConfig, HdmiConfig, OledConfig
from emotion_edge.device.displays.manager import DisplayHardware, DisplayManager
from emotion_edge.device.model.metadata import packaged_model_path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.mp4"
PI_MAIN_SIZE = (1280, 720)


class OverlaySink:
    """Stands in for a Picamera2 with a running DRM preview: keeps a copy of each overlay, as picamera2 does."""

    def __init__(self, main_size: tuple[int, int]):
        self.camera_config = {"main": {"size": main_size}}
        self.overlays = 0
        self.last: np.ndarray | None = None

    def set_overlay(self, overlay: np.ndarray) -> None:
        self.last = overlay.copy()
        self.overlays += 1


def _oled_dummy(_config: OledConfig):
    from luma.core.device import dummy

    return dummy(width=128, height=64, mode="1")


def run_once(video: Path, frames: int, displays: DisplayConfig | None) -> dict:
    config = DaemonConfig(camera=CameraConfig(source=str(video), loop=True, paced=False),
                          model=ModelConfig(path=packaged_model_path(), threads=1))
    daemon = build_daemon(config)
    manager, sink = None, None
    if displays is not None:
        # camera_source "picamera2": the HDMI preview is accepted, then attached to the sink by hand, since the
        # frames come from the video file rather than a Pi camera.
        hardware = DisplayHardware(open_oled=_oled_dummy, start_preview=lambda camera, kind: None,
                                   ip_provider=lambda: "192.0.2.10")
        manager = DisplayManager(displays, daemon.live, camera_source="picamera2", hardware=hardware)
        sink = OverlaySink(PI_MAIN_SIZE)
        manager.camera_preview.attach(sink)
        manager.start()
    started = time.perf_counter()
    stats = daemon.run(max_frames=frames)
    elapsed = time.perf_counter() - started
    if manager is not None:
        manager.stop()
        off = {name: state for name, state in manager.status().items() if state.startswith("off")}
        if off:  # a display that failed costs nothing, which would flatter the result
            raise SystemExit(f"bench/preview.py: display(s) failed during the run: {off}")
    cpu = sum(w.cpu_s for w in manager.workers) if manager else 0.0
    return {"fps": stats["frames"] / elapsed, "overlays": sink.overlays if sink else 0,
            "oled_frames": manager.oled.frames_sent if manager else 0, "seconds": elapsed, "cpu_s": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEMO)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=9, help="pairs of runs")
    parser.add_argument("--hdmi-fps", type=float, default=HdmiConfig.max_fps)
    parser.add_argument("--oled-hz", type=float, default=OledConfig.refresh_hz)
    args = parser.parse_args(argv)
    displays = DisplayConfig(hdmi=HdmiConfig(enabled=True, kind="drm", max_fps=args.hdmi_fps),
                             oled=OledConfig(enabled=True, refresh_hz=args.oled_hz))
    # Quiet: the daemon's start-up notes would drown the table (a failed display is caught in run_once).
    logging.basicConfig(level=logging.ERROR)
    run_once(args.video, 30, None)  # warm-up: caches, lazy imports, the first model load
    runs: dict[str, list[dict]] = {"none": [], "displays": []}
    for pair in range(args.repeats):
        for name in (("none", "displays") if pair % 2 == 0 else ("displays", "none")):
            runs[name].append(run_once(args.video, args.frames, displays if name == "displays" else None))
    ratios = sorted(d["fps"] / n["fps"] for n, d in zip(runs["none"], runs["displays"]))
    print(f"# preview cost: {args.frames} frames of {args.video.name} per run, {args.repeats} pairs of runs")
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, model threads 1; "
          f"HDMI overlay {PI_MAIN_SIZE[0]}x{PI_MAIN_SIZE[1]} at <= {args.hdmi_fps:g}/s, OLED at <= {args.oled_hz:g}/s")
    print("| setting | pipeline fps (median) | runs | overlays set / s | OLED frames / s | display threads CPU |")
    print("|---|---|---|---|---|---|")
    for name, results in runs.items():
        fps = statistics.median(r["fps"] for r in results)
        seconds = sum(r["seconds"] for r in results)
        each = " / ".join(f"{r['fps']:.0f}" for r in results)
        print(f"| {name} | {fps:.1f} | {each} | "
              f"{sum(r['overlays'] for r in results) / seconds:.1f} | {sum(r['oled_frames'] for r in results) / seconds:.1f} | "
              f"{1000 * sum(r['cpu_s'] for r in results) / seconds:.1f} ms/s |")
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio >= 0.9 else "FAIL"
    print(f"\npaired fps ratios (displays / none): {' '.join(f'{r:.2f}' for r in ratios)}")
    print(f"{verdict}: with the displays the pipeline keeps {ratio:.1%} of its frame rate, median of "
          f"{len(ratios)} pairs (acceptance: >= 90%)")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
