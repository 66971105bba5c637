"""`emotion-edge analyze`: the device pipeline on image and video files, printed or as JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emotion_edge.device.commands.options import positive_int


def add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="find faces and their emotions in image or video files",
                       description="Run the device pipeline on files. Exit status 1 if any file could not be analyzed; "
                                   "the other files are still analyzed.")
    p.add_argument("files", nargs="+", type=Path, help="images (JPEG, PNG, WebP, BMP, ...) or videos")
    p.add_argument("--model", type=Path, help="int8 .tflite model with its .json contract (default: the shipped model)")
    p.add_argument("--config", type=Path, help="daemon TOML config whose [detector], [tracker], [smoothing] apply")
    p.add_argument("--detector", choices=["haar", "blazeface-short", "blazeface-full"], help="override the detector")
    p.add_argument("--threads", type=positive_int, default=1, help="LiteRT threads (1 or more)")
    p.add_argument("--max-pixels", type=positive_int,
                   help="refuse images larger than this, read from the header before decoding (default: the "
                        "config's [http] max_pixels, 24000000: the same limit as the HTTP API)")
    p.add_argument("--json", action="store_true", help="print JSON (a list, one record per file)")
    p.add_argument("--annotate", type=Path, metavar="OUT_DIR", help="write annotated images here")
    p.add_argument("--crops", type=Path, metavar="OUT_DIR", help="write a thumbnail per face here")
    p.set_defaults(handler=_run_analyze)


def _run_analyze(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from emotion_edge.device.analyze import analyze_file, dumps
    from emotion_edge.device.config import DaemonConfig, load_config
    from emotion_edge.device.detection import make_detector
    from emotion_edge.device.imaging import ImagePolicy
    from emotion_edge.device.model.classifier import EmotionClassifier
    from emotion_edge.device.model.metadata import packaged_model_path
    from emotion_edge.device.pipeline import FacePipeline

    config = load_config(args.config) if args.config else DaemonConfig()
    detector_config = replace(config.detector, kind=args.detector) if args.detector else config.detector
    classifier = EmotionClassifier(args.model or packaged_model_path(), threads=args.threads)
    detector = make_detector(detector_config)

    def make_pipeline() -> FacePipeline:
        return FacePipeline(make_detector(detector_config), classifier, config.pipeline, config.tracker, config.smoothing)

    # One image policy for the CLI and the HTTP API: the same pixel limit, checked on the header before decoding.
    policy = ImagePolicy(None, args.max_pixels or config.http.max_pixels,
                         "raise the limit with --max-pixels N (or [http] max_pixels in --config)")
    annotate, crops = _output_folder(args.annotate, "--annotate"), _output_folder(args.crops, "--crops")
    unusable = (annotate, crops) != (args.annotate, args.crops)
    results = [analyze_file(path, detector, classifier, make_pipeline, annotate, crops, policy)
               for path in args.files]
    if args.json:
        print(dumps(results))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['file']}: ERROR {r['error']['code']}: {r['error']['message']}", file=sys.stderr)
            elif r["kind"] == "image":
                faces = ", ".join(f"{f['emotion']} {f['confidence']:.0%} at {tuple(f['box'].values())}" for f in r["faces"])
                print(f"{r['file']}: {len(r['faces'])} face(s){': ' + faces if faces else ''}")
            else:
                tracks = {f["track_id"] for fr in r["frames"] for f in fr["faces"]}
                print(f"{r['file']}: {len(r['frames'])} frames, {len(tracks)} tracked face(s)")
    return 1 if unusable or any("error" in r for r in results) else 0


def _output_folder(folder: Path | None, option: str) -> Path | None:
    """`folder`, or None (said once on stderr) when it is an existing file: better every file's results without
    that output than one bare "[Errno 17] File exists" and no results at all (`--annotate photo.jpg` is easy
    to type by mistake)."""
    if folder is None or not folder.exists() or folder.is_dir():
        return folder
    print(f"emotion-edge analyze: {option} {folder}: is a file, not a folder; {option} writes into a folder "
          f"(created if missing): give a folder path, or move {folder} away. Analyzing without {option}.",
          file=sys.stderr)
    return None
