"""`emotion-edge analyze`: argument parsing for the device-side commands (no TensorFlow)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emotion_edge.device.config import DaemonConfig


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the option in its error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


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

    from emotion_edge.device.analyze import ImagePolicy, analyze_file, dumps
    from emotion_edge.device.classifier import EmotionClassifier
    from emotion_edge.device.config import DaemonConfig, load_config
    from emotion_edge.device.detection import make_detector
    from emotion_edge.device.model_metadata import packaged_model_path
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
    results = [analyze_file(path, detector, classifier, make_pipeline, args.annotate, args.crops, policy)
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
    return 1 if any("error" in r for r in results) else 0


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="only the HTTP analyze API, without a camera",
                       description="Serve POST /api/v1/analyze (see README 'HTTP API and status page') with the "
                                   "config's [http], [model] and [detector] settings, whatever [http] enabled says. "
                                   "Stops on SIGTERM or Ctrl-C.")
    _add_daemon_config_options(p)
    p.add_argument("--bind", help="override [http] bind (an address other than 127.0.0.1 needs a token)")
    p.add_argument("--port", type=int, help="override [http] port")
    p.set_defaults(handler=_run_serve)


def _add_daemon_config_options(p: argparse.ArgumentParser) -> None:
    """The options `_daemon_config` reads, for every command that builds the daemon's config."""
    p.add_argument("--config", type=Path, help="TOML config (see examples/config.toml); default: built-in defaults")
    p.add_argument("--model", type=Path, help="override [model] path (default: the config's, else the shipped model)")


def _daemon_config(args: argparse.Namespace) -> DaemonConfig:
    """`--config` (else the defaults) with `--model` applied, and logging set up as it says: `run` and `serve`."""
    from dataclasses import replace

    from emotion_edge.device.config import DaemonConfig, load_config
    from emotion_edge.device.logs import configure_logging
    from emotion_edge.device.model_metadata import packaged_model_path

    config = load_config(args.config) if args.config else DaemonConfig()
    configure_logging(config.log.level, config.log.format)
    model = args.model or (config.model.path if args.config else packaged_model_path())
    return replace(config, model=replace(config.model, path=model))


def _run_serve(args: argparse.Namespace) -> int:
    import signal
    import threading
    from dataclasses import replace

    from emotion_edge.device.web.server import build_server

    config = _daemon_config(args)
    overrides = {k: v for k, v in (("bind", args.bind), ("port", args.port)) if v is not None}
    config = replace(config, http=replace(config.http, enabled=True, **overrides))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with build_server(config, live=None) as server:
        print(f"serving the analyze API on {server.url}/api/v1/analyze", flush=True)
        stop.wait()
    return 0


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the device daemon: camera -> faces -> emotions",
                       description="Read the camera, track every face and classify its emotion in real time. "
                                   "Stops cleanly on SIGTERM or Ctrl-C; SIGHUP reloads the model at [model] path, "
                                   "keeping the running one if the new one fails validation.")
    _add_daemon_config_options(p)
    p.add_argument("--source", help="override [camera] source: picamera2, a webcam index, a file, a folder or a URL")
    p.add_argument("--max-frames", type=non_negative_int, default=0, help="stop after N frames (0: run until stopped)")
    p.set_defaults(handler=_run_daemon)


def _run_daemon(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading
    from dataclasses import replace

    # Handlers first, before the slow imports and the model load: a SIGHUP (a deploy's reload) in that window
    # used to kill the daemon (exit 129). Signals that come early are replayed once the daemon exists.
    early_stop, early_reload = threading.Event(), threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: early_stop.set())
    signal.signal(signal.SIGHUP, lambda *_: early_reload.set())

    from emotion_edge.device.daemon import Daemon, change_logger
    from emotion_edge.device.displays.manager import DisplayManager
    from emotion_edge.device.mqtt_publisher import attach as attach_mqtt
    from emotion_edge.device.web.server import start_for_daemon

    config = _daemon_config(args)
    if args.source:
        config = replace(config, camera=replace(config.camera, source=args.source))
    daemon = Daemon(config)
    daemon.handlers.append(change_logger(daemon.classifier.labels))
    displays = DisplayManager(config.display, daemon.live, camera_source=config.camera.source)
    if displays.camera_preview is not None:
        daemon.attach_camera_preview(displays.camera_preview)
    if displays.status():
        daemon.stats_providers.append(lambda: {"displays": displays.status()})
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: daemon.stop())
    signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())  # `systemctl reload`, `emotion-edge deploy`
    if early_stop.is_set():
        daemon.stop()
    if early_reload.is_set():
        daemon.request_reload()
    mqtt = web = None
    try:  # a part that fails to start (a bad [http] token, say) must not leave the started ones running
        # Connects in the background: a broker that is down at boot never holds up the camera; events spool meanwhile.
        mqtt = attach_mqtt(daemon) if config.mqtt.enabled else None
        # None when [http] is off or cannot listen (logged); the API follows the daemon's model across reloads.
        web = start_for_daemon(config, daemon.live, lambda: daemon.classifier.path)
        displays.start()
        print(json.dumps(daemon.run(max_frames=args.max_frames)))
    finally:
        if mqtt is not None:
            mqtt.close()  # ends open tracks, flushes briefly, publishes `stopped`; the rest stays spooled
        displays.stop()
        if web is not None:
            web.stop()
    return 0
