"""What a frame costs the daemon besides the emotion model: this checkout against a baseline revision, in one run.

The daemon's own loop (`build_daemon`, no MQTT, HTTP or displays) replays `examples/demo.mp4` (640x480, one
face) on one thread (LiteRT threads 1 for both models, cv2.setNumThreads(1)) in two modes:

- paced at 15 fps, as a camera delivers it: CPU seconds of the process per frame, divided by the emotion
  model's own invoke time (one face, as the contract says: with its mirror) measured in the same process. The
  ratio cancels the machine's speed and load, which the training run sharing this CPU makes vary.
- unpaced: the daemon's per-stage milliseconds (its StageTimer, added up over the run) and frames per second.
- picamera: unpaced again, but through `PiCameraSource` and a stand-in for picamera2 that hands out the demo's
  frames as a Pi camera would at the default sizes (main 1280x720 BGR, lores 640x360 YUV420, each a fresh copy
  per request as `make_array` makes): the Pi's data path, with no video decoding in the capture.

Each setting runs in its own subprocess: the baseline imports the code of `--baseline-rev` (exported with
`git archive` into a temporary folder, first on PYTHONPATH), the others this checkout's. Settings alternate, run
after run, and the median of the repeats is reported with paired ratios against the baseline.

    python bench/frame_budget.py [--baseline-rev 77c498c] [--repeats 3] [--frames 150]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo.mp4"
# The commit before the frame budget work (issue 19): per-frame buffers, full-frame RGB, detect every frame.
DEFAULT_BASELINE = "77c498c"
# setting name -> (code: "baseline" or "checkout", [pipeline] keys)
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "baseline": ("baseline", {"detect_every": 1}),
    "buffers (cadence 1)": ("checkout", {"detect_every": 1, "mirrors": "together", "classify_every": 1}),
    "classify every frame": ("checkout", {"classify_every": 1}),  # the shipped defaults before classify_every
    "shipped defaults": ("checkout", {}),
}
PACKAGE_DIRS = {"cli": "emotion_edge", "device": "emotion_edge/device", "models": "emotion_edge/models"}
INVOKES = 100
MODES = ("unpaced", "picamera", "paced")


# ----------------------------------------------------------------------------- worker (one setting, one process)


def model_invoke_ms(classifier: Any, gray: Any) -> float:
    """Median ms of one face through the model as its contract says (flip-averaged: two crops, one invoke)."""
    import numpy as np

    crop = np.ascontiguousarray(gray[100:196, 250:346])
    from emotion_edge.device.contract import crop_face

    face = crop_face(crop, (0, 0, 96, 96), size=classifier.contract.input_size)[None]
    for _ in range(5):
        classifier.classify(face)
    times = []
    for _ in range(INVOKES):
        started = time.perf_counter()
        classifier.classify(face)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


class StandInRequest:
    def __init__(self, main: Any, lores: Any) -> None:
        self.main, self.lores = main, lores

    def make_array(self, stream: str) -> Any:
        return (self.main if stream == "main" else self.lores).copy()  # picamera2 copies out of the camera buffer

    def release(self) -> None:
        pass


class StandInPicamera2:
    """The Picamera2 calls PiCameraSource makes, answered at once with the demo's frames at the camera's sizes."""

    def __init__(self, main_size: tuple[int, int], lores_size: tuple[int, int]) -> None:
        import cv2

        capture = cv2.VideoCapture(str(DEMO))
        self.frames = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            main = cv2.resize(image, main_size, interpolation=cv2.INTER_LINEAR)
            lores = cv2.cvtColor(cv2.resize(image, lores_size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2YUV_I420)
            self.frames.append((main, lores))
        self.count = 0

    def create_video_configuration(self, **kwargs: Any) -> dict:
        return kwargs

    def configure(self, config: Any) -> None:
        pass

    def start(self) -> None:
        pass

    def capture_request(self, wait: Any = None) -> Any:
        from concurrent.futures import Future

        job: Future = Future()
        job.set_result(StandInRequest(*self.frames[self.count % len(self.frames)]))
        self.count += 1
        return job

    def wait(self, job: Any, timeout: Any = None) -> Any:
        return job.result(timeout=timeout)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def worker(pipeline_keys: dict[str, Any], frames: int, mode: str) -> dict[str, Any]:
    import cv2

    from emotion_edge.device.config import parse_config
    from emotion_edge.device.daemon.app import build_daemon
    from emotion_edge.device.model.metadata import packaged_model_path

    cv2.setNumThreads(1)
    paced = mode == "paced"
    lines = [
        "[camera]", f'source = "{DEMO}"', "loop = true", f"paced = {'true' if paced else 'false'}",
        *(["fps = 15.0"] if paced else []),
        "[model]", f'path = "{packaged_model_path()}"', "threads = 1",
        "[detector]", "threads = 1",
        "[pipeline]", *(f"{k} = {json.dumps(v)}" for k, v in pipeline_keys.items()),
    ]
    config = parse_config("\n".join(lines))
    source = None
    if mode == "picamera":
        from emotion_edge.device.sources import PiCameraConfig, PiCameraSource

        camera = PiCameraConfig()  # the daemon's defaults: main 1280x720, lores 640x360
        stand_in = StandInPicamera2(camera.main_size, camera.lores_size)
        source = PiCameraSource(camera, camera_factory=lambda: stand_in)
    daemon = build_daemon(config, source=source)
    totals: dict[str, float] = {}
    record = daemon.pipeline.timer.record

    def adding_up(stage: str, seconds: float) -> None:  # the timer keeps a moving average; add up as well
        totals[stage] = totals.get(stage, 0.0) + seconds
        record(stage, seconds)

    daemon.pipeline.timer.record = adding_up  # type: ignore[method-assign]
    first = cv2.VideoCapture(str(DEMO)).read()[1]
    invoke_before = model_invoke_ms(daemon.classifier, cv2.cvtColor(first, cv2.COLOR_BGR2GRAY))
    with daemon.source:
        for _ in range(10):  # warm up: first invokes allocate, the pacer starts its schedule
            daemon.step()
        totals.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        done = faces = 0
        while done < frames:
            reading = daemon.step()
            if reading is not None:
                done += 1
                faces += len(reading.faces)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    invoke_after = model_invoke_ms(daemon.classifier, cv2.cvtColor(first, cv2.COLOR_BGR2GRAY))
    return {"cpu_ms_per_frame": 1000 * cpu / frames, "fps": frames / wall, "faces_per_frame": faces / frames,
            "invoke_ms": statistics.median([invoke_before, invoke_after]),
            "stage_ms": {k: 1000 * v / frames for k, v in totals.items()}}


# ----------------------------------------------------------------------------- driver


def export_revision(rev: str, folder: Path) -> Path:
    """`rev`'s device code laid out as the installed package (emotion_edge/, .../device, .../models)."""
    archive = folder / "rev.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), rev, *PACKAGE_DIRS], check=True)
    source = folder / "src"
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    root = folder / "pkg"
    for name, target in PACKAGE_DIRS.items():
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (source / name).rename(root / target)
    return root


def run_setting(name: str, baseline_root: Path, frames: int, mode: str) -> dict[str, Any]:
    code, keys = SETTINGS[name]
    env = dict(os.environ)
    if code == "baseline":
        # First on the path: ahead of this checkout's editable install (whose finder Python asks last).
        env["PYTHONPATH"] = os.pathsep.join([str(baseline_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    args = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(keys), "--frames", str(frames)]
    done = subprocess.run(args + ["--mode", mode], capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"setting {name!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(results: dict[str, dict[str, list[dict[str, Any]]]], args: argparse.Namespace) -> str:
    paced, unpaced = results["paced"], results["unpaced"]
    base = "baseline"
    out = ["## paced at 15 fps, one thread: CPU per frame against the model's own invoke",
           "| setting | CPU ms/frame | model invoke ms | CPU/frame ÷ invoke | ratio vs baseline (paired runs) | faces/frame |",
           "|---|---|---|---|---|---|"]
    for name, runs in paced.items():
        norm = [r["cpu_ms_per_frame"] / r["invoke_ms"] for r in runs]
        pairs = [a / b for a, b in zip(norm, [r["cpu_ms_per_frame"] / r["invoke_ms"] for r in paced[base]])]
        out.append(f"| {name} | {median_of(runs, 'cpu_ms_per_frame'):.2f} | {median_of(runs, 'invoke_ms'):.2f} | "
                   f"{statistics.median(norm):.2f} | {statistics.median(pairs):.2f} ({' '.join(f'{p:.2f}' for p in sorted(pairs))}) | "
                   f"{median_of(runs, 'faces_per_frame'):.2f} |")
    stages = [s for s in ("wait", "capture", "detect", "classify", "publish")
              if any(s in r["stage_ms"] for runs in unpaced.values() for r in runs)]
    for mode, title in (("unpaced", "unpaced, demo.mp4 decoded by OpenCV"),
                        ("picamera", "unpaced, a Pi camera's frames (stand-in picamera2, main 1280x720, lores 640x360)")):
        out += ["", f"## {title}, one thread: the daemon's own per-stage ms per frame (median run)",
                "| setting | fps | fps ratio vs baseline (paired) | " + " | ".join(f"{s} ms" for s in stages)
                + " | rest of the loop ms | model invoke ms |",
                "|---|---|---|" + "---|" * len(stages) + "---|---|"]
        for name, runs in results[mode].items():
            chosen = sorted(runs, key=lambda r: r["fps"])[(len(runs) - 1) // 2]
            pairs = sorted(a["fps"] / b["fps"] for a, b in zip(runs, results[mode][base]))
            rest = 1000 / chosen["fps"] - sum(chosen["stage_ms"].values())
            cells = " | ".join(f"{chosen['stage_ms'].get(s, 0.0):.2f}" for s in stages)
            out.append(f"| {name} | {chosen['fps']:.1f} | {statistics.median(pairs):.2f} "
                       f"({' '.join(f'{p:.2f}' for p in pairs)}) | {cells} | {rest:.2f} | {chosen['invoke_ms']:.2f} |")
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE, help=f"git revision of the baseline (default {DEFAULT_BASELINE})")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting and mode, alternating (default 3)")
    parser.add_argument("--frames", type=int, default=150, help="frames per paced run (default 150 = 10 s)")
    parser.add_argument("--unpaced-frames", type=int, default=450, help="frames per unpaced run (default 450)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one setting's [pipeline] keys as JSON
    parser.add_argument("--mode", default="unpaced", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker), args.frames, args.mode)))
        return
    load = os.getloadavg()[0]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {m: {n: [] for n in SETTINGS} for m in MODES}
    with tempfile.TemporaryDirectory(prefix="frame-budget-") as tmp:
        baseline_root = export_revision(args.baseline_rev, Path(tmp))
        for _ in range(args.repeats):
            for mode in MODES:
                frames = args.frames if mode == "paced" else args.unpaced_frames
                for name in SETTINGS:
                    results[mode][name].append(run_setting(name, baseline_root, frames, mode))
    print(f"# frame budget: examples/demo.mp4 (640x480, one face), one thread, {args.repeats} alternating runs per "
          f"setting and mode; paced runs {args.frames} frames at 15 fps, unpaced {args.unpaced_frames}")
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
          f"{load:.1f} at start, {os.getloadavg()[0]:.1f} at the end (a training run shares the CPU); "
          f"baseline = {args.baseline_rev}")
    print("# settings: " + "; ".join(f"{n}: {c} code, [pipeline] {k or 'defaults'}" for n, (c, k) in SETTINGS.items()))
    print(report(results, args))


if __name__ == "__main__":
    main()
