"""Frames per second and ms per stage of the device pipeline, side by side with the peer `fer` package.

Frames are 640x480 with 0, 1, 2 and 4 real faces: the head of scikit-image's
bundled `astronaut` photo pasted at known, slowly moving places and sizes, so
every face's true box is known and recall (share of pasted faces found, IoU >=
0.3) and mean IoU (how well the boxes sit, motion-predicted ones included) can
be scored. Our side is `FacePipeline` with each detector kind and
thread count; the peer is `FER(mtcnn=False).detect_emotions` from PyPI's `fer`,
measured in the same run on the identical frames. It is the baseline of the
ratio column; with --rounds N the peer and ours alternate N times and the ratio
is the median of the rounds' ratios (a shared CPU makes single rounds swing).
Results are a markdown table, never timed assertions.

The peer runs in its own venv so its TensorFlow and OpenCV cannot disturb ours;
this file is run there as a subprocess (hidden `--peer-worker`), which is why
the device imports live inside the functions that need them. Set the venv up
once (fer's declared dependencies also pull torch, moviepy, pandas and
matplotlib, which only its MTCNN and video paths use; OpenCV 5 dropped
CascadeClassifier, which its Haar path needs; it imports pkg_resources):

    python3 -m venv .bench-venv
    .bench-venv/bin/pip install --no-deps fer==25.10.3
    .bench-venv/bin/pip install tensorflow-cpu "opencv-python-headless>=4.8,<5" requests Pillow "setuptools<81"

    python bench/pipeline.py [--model PATH] [--frames 30] [--repeats 3] [--rounds 1] [--skip-peer]
        [--classify-every 1,2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np

if TYPE_CHECKING:  # only in our venv; the peer's interpreter runs this file without emotion_edge
    from emotion_edge.device.detection import FaceDetector
    from emotion_edge.device.model.classifier import EmotionClassifier

FRAME_W, FRAME_H = 640, 480
# The face in skimage.data.astronaut(), marked by eye as in tests/test_detection.py;
# haar (177, 67, 93, 93), blazeface-short (176, 75, 98, 98) and fer's cascade
# (177, 66, 95, 95) all find it with IoU > 0.8 against this box.
PHOTO_FACE = (176, 70, 98, 98)
# Context kept around the face, in face widths per side. Haar needs some; 0.3 is
# found by all three detectors at 80-200 px, and keeps the pasted head small
# enough (1.6 face widths) that four faces of >= 120 px fit 640x480 unoverlapped.
CONTEXT = 0.3
FACE_MIN, FACE_MAX = 120, 200  # face side in frame pixels; BlazeFace short-range misses <= 100 px at 640x480
FACE_COUNTS = (0, 1, 2, 4)
MAX_DRIFT = 60  # px each way over a clip: a person shifting in front of the sensor, trackable at 30 fps
CLIP_FPS = 30.0  # the frames' timestamps, which the tracker's motion prediction uses
MATCH_IOU = 0.3
WARMUP_FRAMES = 3  # first invokes allocate buffers and fill caches; not what a running sensor pays
REPO = Path(__file__).resolve().parent.parent
DEFAULT_PEER_PYTHON = REPO / ".bench-venv" / "bin" / "python"
PEER_SETTING = "peer: fer FER(mtcnn=False)"

XYWH = tuple[float, float, float, float]


@dataclass(frozen=True)
class Clip:
    faces: int
    frames: np.ndarray  # (F, H, W, 3) uint8 BGR
    boxes: np.ndarray  # (F, faces, 4) true face boxes, x y w h in pixels


@dataclass(frozen=True)
class Pass:
    """One timed run over a clip: mean ms per frame and what was reported on each frame."""

    total_ms: float
    detect_ms: float | None
    classify_ms: float | None
    boxes: list[list[XYWH]]


@dataclass(frozen=True)
class Measurement:
    setting: str
    faces: int
    total_ms: float
    detect_ms: float | None
    classify_ms: float | None
    recall: float | None  # None when there is no face to find
    false_per_frame: float
    mean_iou: float | None  # each true face's best IoU with a reported box (0 when none), averaged


# ----------------------------------------------------------------------------- frames


def head_patch(photo_bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The photo's head with CONTEXT around it, and the face's top-left inside that patch."""
    fx, fy, fw, fh = PHOTO_FACE
    margin = round(CONTEXT * fw)
    x0, y0 = max(0, fx - margin), max(0, fy - margin)
    return photo_bgr[y0 : fy + fh + margin, x0 : fx + fw + margin], (fx - x0, fy - y0)


def background(rng: np.random.Generator) -> np.ndarray:
    """A smooth, slightly noisy wall: no edges of its own for a detector to mistake."""
    ramp = np.linspace(70, 170, FRAME_W)[None, :] + np.linspace(-15, 15, FRAME_H)[:, None]
    gray = np.clip(ramp + rng.normal(0, 3, ramp.shape), 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def cells(faces: int) -> list[tuple[int, int, int, int]]:
    """One grid cell (x, y, w, h) per face, so pasted heads never cover each other."""
    if faces == 0:
        return []
    cols = math.ceil(math.sqrt(faces))
    rows = math.ceil(faces / cols)
    cw, ch = FRAME_W // cols, FRAME_H // rows
    return [((i % cols) * cw, (i // cols) * ch, cw, ch) for i in range(faces)]


def make_clip(photo_bgr: np.ndarray, faces: int, frames: int, rng: np.random.Generator) -> Clip:
    """`frames` frames with `faces` heads, each drifting and zooming smoothly inside its own cell."""
    head, (off_x, off_y) = head_patch(photo_bgr)
    head_h, head_w = head.shape[:2]
    fw = PHOTO_FACE[2]
    wall = background(rng)
    images = np.repeat(wall[None], frames, axis=0)
    boxes = np.zeros((frames, faces, 4), np.float64)
    for j, (cx, cy, cw, ch) in enumerate(cells(faces)):
        largest = min(FACE_MAX, int(min(cw / head_w, ch / head_h) * fw))
        smallest = min(FACE_MIN, largest)
        phase_size, phase_x, phase_y = rng.uniform(0, 2 * math.pi, 3)
        for i in range(frames):
            turn = 2 * math.pi * i / frames  # one full cycle per clip, so the motion stays smooth
            side = smallest + (largest - smallest) * 0.5 * (1 + math.sin(phase_size + turn))
            scale = side / fw
            patch = cv2.resize(head, (round(head_w * scale), round(head_h * scale)),
                               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            ph, pw = patch.shape[:2]
            slack_x, slack_y = cw - pw, ch - ph
            x = cx + slack_x // 2 + round(min(slack_x / 2, MAX_DRIFT) * math.sin(phase_x + turn))
            y = cy + slack_y // 2 + round(min(slack_y / 2, MAX_DRIFT) * math.sin(phase_y + turn))
            images[i, y : y + ph, x : x + pw] = patch
            boxes[i, j] = (x + off_x * pw / head_w, y + off_y * ph / head_h, fw * pw / head_w, PHOTO_FACE[3] * ph / head_h)
    return Clip(faces, images, boxes)


def make_clips(frames: int, seed: int) -> list[Clip]:
    from skimage import data as skimage_data  # a registry package's real photo; nothing is downloaded

    photo = np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1])  # RGB -> BGR, as a camera frame
    rng = np.random.default_rng(seed)
    return [make_clip(photo, n, frames, rng) for n in FACE_COUNTS]


# ----------------------------------------------------------------------------- scoring


def score(found: list[list[XYWH]], truth: np.ndarray) -> tuple[float | None, float, float | None]:
    """(recall, false boxes per frame, mean best IoU): a true face is found when some box overlaps it by IoU >=
    MATCH_IOU; the mean IoU also shows how well boxes sit on the faces (motion-predicted ones too)."""
    from emotion_edge.device.geometry import iou  # scored in our venv, never the peer's

    hits = false = 0
    overlaps = []
    for boxes, faces in zip(found, truth):
        best = [max((iou(tuple(t), b) for b in boxes), default=0.0) for t in faces]
        overlaps += best
        hits += sum(b >= MATCH_IOU for b in best)
        false += sum(all(iou(tuple(t), b) < MATCH_IOU for t in faces) for b in boxes)
    total = truth.shape[0] * truth.shape[1]
    return (hits / total if total else None), false / max(1, len(found)), (float(np.mean(overlaps)) if total else None)


def median_pass(passes: list[Pass]) -> Pass:
    """The pass with the median total: the training job shares this CPU, so single passes can stall."""
    return sorted(passes, key=lambda p: p.total_ms)[(len(passes) - 1) // 2]


def measurement(setting: str, clip: Clip, chosen: Pass) -> Measurement:
    recall, false, mean_iou = score(chosen.boxes, clip.boxes)
    return Measurement(setting, clip.faces, chosen.total_ms, chosen.detect_ms, chosen.classify_ms, recall, false,
                       mean_iou)


def timed(method: Callable[..., Any], totals: dict[str, float], stage: str) -> Callable[..., Any]:
    """`method`, also adding the seconds each call takes to totals[stage]."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            totals[stage] = totals.get(stage, 0.0) + (time.perf_counter() - started)

    return wrapper


def adding_up(record: Callable[[str, float], None], totals: dict[str, float]) -> Callable[[str, float], None]:
    """A stage timer's record(stage, seconds) that also adds the seconds to totals[stage]."""

    def wrapper(stage: str, seconds: float) -> None:
        totals[stage] = totals.get(stage, 0.0) + seconds
        record(stage, seconds)

    return wrapper


# ----------------------------------------------------------------------------- our pipeline


def run_ours(clip: Clip, detector: FaceDetector, classifier: EmotionClassifier, detect_every: int, mirrors: str,
             classify_every: int = 1) -> Pass:
    """One pass of FacePipeline over the clip; a fresh pipeline so no track carries over from the last pass."""
    from emotion_edge.device.config import PipelineConfig
    from emotion_edge.device.pipeline import FacePipeline
    from emotion_edge.device.sources import BufferPool, bgr_frame

    pipeline = FacePipeline(detector, classifier, PipelineConfig(detect_every=detect_every, mirrors=mirrors,
                                                                    classify_every=classify_every))
    pool = BufferPool()  # the gray image's buffers, reused as the camera sources reuse theirs
    stages: dict[str, float] = {}
    # The pipeline's own timer keeps only a moving average; also add up its per-stage seconds.
    pipeline.timer.record = adding_up(pipeline.timer.record, stages)  # type: ignore[method-assign]
    boxes: list[list[XYWH]] = []
    elapsed = 0.0
    for i, image in enumerate(clip.frames):
        started = time.perf_counter()
        # The gray conversion is timed too: the peer is handed the same BGR frame and converts it itself.
        reading = pipeline.process(bgr_frame(image, timestamp=i / CLIP_FPS, index=i, gray_pool=pool))
        elapsed += time.perf_counter() - started
        boxes.append([(f.box.x, f.box.y, f.box.w, f.box.h) for f in reading.faces])
    n = len(clip.frames)
    return Pass(1000 * elapsed / n, 1000 * stages.get("detect", 0.0) / n, 1000 * stages.get("classify", 0.0) / n, boxes)


def measure_ours(clips: list[Clip], kind: str, threads: int, detect_every: int, mirrors: str, model: Path,
                 repeats: int, classify_every: int = 1) -> list[Measurement]:
    from emotion_edge.device.detection import DetectorConfig, make_detector
    from emotion_edge.device.model.classifier import EmotionClassifier

    detector = make_detector(DetectorConfig(kind=kind, threads=threads))
    classifier = EmotionClassifier(model, threads=threads)
    # Process-wide, and HaarDetector is the only one that sets it: set it for every
    # kind so "N threads" also bounds crop resizing and the gray conversion.
    cv2.setNumThreads(threads)
    setting = (f"ours: {kind}, {threads} thread{'s' if threads > 1 else ''}, detect every {detect_every}, "
               f"mirrors {mirrors}" + (f", classify every {classify_every}" if classify_every > 1 else ""))
    rows = []
    for clip in clips:
        warm = Clip(clip.faces, clip.frames[:WARMUP_FRAMES], clip.boxes[:WARMUP_FRAMES])
        run_ours(warm, detector, classifier, detect_every, mirrors, classify_every)
        chosen = median_pass([run_ours(clip, detector, classifier, detect_every, mirrors, classify_every)
                              for _ in range(repeats)])
        rows.append(measurement(setting, clip, chosen))
    return rows


# ----------------------------------------------------------------------------- the peer (runs in its venv)


def forbid_network() -> None:
    """Make any internet connection fail loudly: the peer's weights must come from its wheel, never a download."""
    connect = socket.socket.connect

    def refuse(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"the peer tried to connect to {address!r}; it must run from its wheel's files only")
        return connect(sock, address)

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]


def run_peer_pass(fer: Any, frames: np.ndarray) -> Pass:
    stages: dict[str, float] = {}
    # Instance attributes shadow the methods detect_emotions calls through self, timing its two stages.
    fer.find_faces = timed(type(fer).find_faces.__get__(fer), stages, "detect")
    fer._classify_emotions = timed(type(fer)._classify_emotions.__get__(fer), stages, "classify")
    boxes: list[list[XYWH]] = []
    elapsed = 0.0
    for image in frames:
        started = time.perf_counter()
        result = fer.detect_emotions(image)
        elapsed += time.perf_counter() - started
        boxes.append([tuple(float(v) for v in face["box"]) for face in result])
    n = len(frames)
    return Pass(1000 * elapsed / n, 1000 * stages.get("detect", 0.0) / n, 1000 * stages.get("classify", 0.0) / n, boxes)


def peer_worker(npz: Path, repeats: int) -> dict[str, Any]:
    """Time FER(mtcnn=False).detect_emotions on each clip in `npz`; JSON-able timings and boxes."""
    forbid_network()
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON whatever fer or TensorFlow print
        import fer as fer_package
        import tensorflow as tf
        from fer.fer import FER

        fer = FER(mtcnn=False)
        clips = np.load(npz)
        results = []
        for n in FACE_COUNTS:
            frames = clips[f"frames_{n}"]
            run_peer_pass(fer, frames[:WARMUP_FRAMES])
            chosen = median_pass([run_peer_pass(fer, frames) for _ in range(repeats)])
            results.append({"faces": n, "total_ms": chosen.total_ms, "detect_ms": chosen.detect_ms,
                            "classify_ms": chosen.classify_ms, "boxes": chosen.boxes})
    return {
        "fer": fer_package.__version__,
        "tensorflow": tf.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "results": results,
    }


def measure_peer(clips: list[Clip], peer_python: Path, repeats: int) -> tuple[list[Measurement], dict[str, Any]]:
    """Run the peer worker on the identical frames in the peer's interpreter; its rows and versions."""
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        npz = Path(tmp) / "clips.npz"
        np.savez(npz, **{f"frames_{c.faces}": c.frames for c in clips})
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(
            [str(peer_python), str(Path(__file__).resolve()), "--peer-worker", str(npz), "--repeats", str(repeats)],
            capture_output=True, text=True, env=env, timeout=1800,
        )
    if done.returncode != 0:
        raise SystemExit(f"the peer worker ({peer_python}) failed with exit code {done.returncode}:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    by_faces = {c.faces: c for c in clips}
    rows = []
    for r in report["results"]:
        chosen = Pass(r["total_ms"], r["detect_ms"], r["classify_ms"], [[tuple(b) for b in f] for f in r["boxes"]])
        rows.append(measurement(PEER_SETTING, by_faces[r["faces"]], chosen))
    return rows, report


# ----------------------------------------------------------------------------- output


def cell(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def median_row(rows: list[Measurement]) -> Measurement:
    return sorted(rows, key=lambda m: m.total_ms)[(len(rows) - 1) // 2]


def table(rounds: list[tuple[list[Measurement], list[Measurement]]]) -> str:
    """One block per face count, the peer's row (the baseline) first. Each round timed the peer and then every
    setting of ours, so the ratio of a round compares runs minutes apart at most; the median round's figures and
    the median of the rounds' ratios are shown (the training run sharing this CPU makes single rounds stall)."""
    by_key: dict[tuple[str, int], list[Measurement]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    for peer, ours in rounds:
        baseline = {m.faces: m.total_ms for m in peer}
        for m in peer + ours:
            by_key.setdefault((m.setting, m.faces), []).append(m)
            if m.faces in baseline:
                ratios.setdefault((m.setting, m.faces), []).append(baseline[m.faces] / m.total_ms)
    lines = [
        "| setting | faces in frame | fps | detect ms | classify ms | total ms | recall | mean IoU | "
        "fps ratio vs peer (median of rounds; each round) | false boxes/frame |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    settings = list(dict.fromkeys(m.setting for peer, ours in rounds[:1] for m in peer + ours))
    for faces in FACE_COUNTS:
        for setting in settings:
            if (setting, faces) not in by_key:
                continue
            m = median_row(by_key[(setting, faces)])
            each = ratios.get((setting, faces), [])
            if setting == PEER_SETTING:
                ratio_text = "1.00 (baseline)"
            else:
                ratio_text = "—" if not each else f"{np.median(each):.2f} ({' '.join(f'{r:.1f}' for r in each)})"
            lines.append(
                f"| {m.setting} | {faces} | {1000 / m.total_ms:.1f} | {cell(m.detect_ms)} | {cell(m.classify_ms, 2)} | "
                f"{m.total_ms:.1f} | {cell(m.recall, 2)} | {cell(m.mean_iou, 2)} | {ratio_text} | {m.false_per_frame:.2f} |"
            )
    return "\n".join(lines)


def default_model() -> Path | None:
    from emotion_edge.device.model.metadata import packaged_model_path

    path = packaged_model_path()
    return path if path.is_file() else None


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="frames per face count (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per clip; the median one is reported")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of the peer then ours, alternating; ratios are per round, their median shown")
    parser.add_argument("--model", type=Path, help="int8 emotion model (default: the packaged one)")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON if DEFAULT_PEER_PYTHON.exists() else None,
                        help=f"python of the venv with `fer` (default {DEFAULT_PEER_PYTHON} if present)")
    parser.add_argument("--skip-peer", action="store_true", help="only our pipeline; the ratio column stays empty")
    parser.add_argument("--kinds", default="haar,blazeface-short", help="detector kinds, comma-separated")
    parser.add_argument("--threads", type=int_list, default=[1, 2], help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--detect-every", type=int_list, default=[1, 3],
                        help="detect on every Nth frame, comma-separated (default 1,3; 3 tracks in between)")
    parser.add_argument("--mirrors", default="together,alternate",
                        help="a flip-averaging model's mirror views per frame: together, alternate (comma-separated)")
    parser.add_argument("--classify-every", type=int_list, default=[1],
                        help="classify each tracked face on every Nth frame, comma-separated (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peer-worker", type=Path, help=argparse.SUPPRESS)  # internal: run in the peer's venv
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.peer_worker is not None:
        print(json.dumps(peer_worker(args.peer_worker, args.repeats)))
        return
    model = args.model or default_model()
    if model is None:
        raise SystemExit("the packaged emotion model is not there yet (it is trained and quantized first); pass --model PATH")
    if not args.skip_peer and args.peer_python is None:
        raise SystemExit(f"no peer venv at {DEFAULT_PEER_PYTHON}: create it as this file's docstring says, "
                         "pass --peer-python, or --skip-peer")
    clips = make_clips(args.frames, args.seed)
    load = os.getloadavg()[0]
    rounds, report = [], {}
    for _ in range(args.rounds):
        peer_rows, report = measure_peer(clips, args.peer_python, args.repeats) if not args.skip_peer else ([], {})
        rows = []
        for kind in args.kinds.split(","):
            for detect_every in args.detect_every:
                for mirrors in args.mirrors.split(","):
                    for classify_every in args.classify_every:
                        for threads in args.threads:
                            rows += measure_ours(clips, kind.strip(), threads, detect_every, mirrors.strip(), model,
                                                 args.repeats, classify_every)
        rounds.append((peer_rows, rows))

    print(f"host: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at the end "
          f"(other work shares the CPU)")
    print(f"frames: {FRAME_W}x{FRAME_H}, {args.frames} per face count, faces {FACE_MIN}-{FACE_MAX} px (as fit), "
          f"median of {args.repeats} passes, {args.rounds} round(s) of the peer then ours; recall = share of pasted faces with a box at IoU >= {MATCH_IOU}")
    print(f"ours: model {model.name}; N threads = LiteRT threads of BlazeFace and the emotion model and "
          f"cv2.setNumThreads(N); detect/classify ms are per frame (averaged over skipped frames too)")
    if report:
        print(f"peer: fer {report['fer']} FER(mtcnn=False) = OpenCV Haar cascade + its bundled int8 TFLite model, "
              f"library-default threads (OpenCV {report['opencv']}: {report['opencv_threads']} threads; "
              f"TensorFlow {report['tensorflow']} tf.lite.Interpreter default)")
    print()
    print(table(rounds))


if __name__ == "__main__":
    main()
