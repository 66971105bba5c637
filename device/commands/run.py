"""`emotion-edge run` and `serve`: argument parsing for the daemon commands (no TensorFlow); `daemon.app` builds the rest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from emotion_edge.device.commands.options import non_negative_int

if TYPE_CHECKING:
    from emotion_edge.device.config import DaemonConfig


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="only the HTTP analyze API, without a camera",
                       description="Serve POST /api/v1/analyze (see README 'HTTP API and status page') with the "
                                   "config's [http], [model] and [detector] settings, whatever [http] enabled says. "
                                   "Stops on SIGTERM or Ctrl-C; SIGHUP reloads the model at [model] path, keeping "
                                   "the served one if the new one fails validation.")
    _add_daemon_config_options(p)
    from emotion_edge.device.web.config import bind_address

    p.add_argument("--bind", type=bind_address,
                   help="override [http] bind (an address other than 127.0.0.1 needs a token)")
    p.add_argument("--port", type=int, help="override [http] port")
    p.set_defaults(handler=_run_serve)


def _add_daemon_config_options(p: argparse.ArgumentParser) -> None:
    """The options `_daemon_config` reads, for every command that builds the daemon's config."""
    p.add_argument("--config", type=Path, help="TOML config (see examples/config.toml); default: built-in defaults")
    p.add_argument("--model", type=Path, help="override [model] path (default: the config's, else the shipped model)")


def _daemon_config(args: argparse.Namespace) -> DaemonConfig:
    """`--config` (else the defaults) with `--model` applied, and logging set up as it says (`-v`: debug): `run`, `serve`."""
    from dataclasses import replace

    from emotion_edge.device.config import DaemonConfig, load_config
    from emotion_edge.device.logs import configure_logging
    from emotion_edge.device.model.metadata import packaged_model_path

    config = load_config(args.config) if args.config else DaemonConfig()
    # `emotion-edge -v` asks for debug logging for this run, whatever level the config sets for the service.
    configure_logging("DEBUG" if getattr(args, "verbose", False) else config.log.level, config.log.format)
    model = args.model or (config.model.path if args.config else packaged_model_path())
    return replace(config, model=replace(config.model, path=model))


def _run_serve(args: argparse.Namespace) -> int:
    import signal
    import threading
    from dataclasses import replace

    # Handlers first, as `run` does: SIGHUP's default action would end the server (a deploy sends it to reload).
    # The handlers only set events; the reload itself runs below, on this thread, never inside a handler.
    wake, stop, reload = threading.Event(), threading.Event(), threading.Event()

    def request(event: threading.Event) -> None:
        event.set()
        wake.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: request(stop))
    signal.signal(signal.SIGHUP, lambda *_: request(reload))

    from emotion_edge.device.web.server import ServedModel, build_server

    config = _daemon_config(args)
    overrides = {k: v for k, v in (("bind", args.bind), ("port", args.port)) if v is not None}
    config = replace(config, http=replace(config.http, enabled=True, **overrides))
    with build_server(config, live=None) as server:
        assert server.service is not None
        model = ServedModel(config.model.path, server.service, config.http.analyze_threads)
        print(f"serving the analyze API on {server.url}/api/v1/analyze", flush=True)
        while not stop.is_set():
            wake.wait()
            wake.clear()
            if reload.is_set() and not stop.is_set():
                reload.clear()
                model.reload()
    return 0


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the device daemon: camera -> faces -> emotions",
                       description="Read the camera, track every face and classify its emotion in real time. "
                                   "Stops cleanly on SIGTERM or Ctrl-C; SIGHUP reloads the model at [model] path, "
                                   "keeping the running one if the new one fails validation.")
    _add_daemon_config_options(p)
    p.add_argument("--source", help="override [camera] source: picamera2, a webcam index, a file, a folder or a URL")
    p.add_argument("--max-frames", type=non_negative_int, default=0, help="stop after N frames (0: run until stopped)")
    p.add_argument("--unpaced", action="store_true",
                   help="replay a video file or image folder as fast as it is read, not at its own frame rate "
                        "(sets [camera] paced = false)")
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

    from emotion_edge.device.daemon.app import App

    config = _daemon_config(args)
    if args.source:
        config = replace(config, camera=replace(config.camera, source=args.source))
    if args.unpaced:
        config = replace(config, camera=replace(config.camera, paced=False))
    app = App(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: app.stop())
    signal.signal(signal.SIGHUP, lambda *_: app.request_reload())  # `systemctl reload`, `emotion-edge deploy`
    if early_stop.is_set():
        app.stop()
    if early_reload.is_set():
        app.request_reload()
    print(json.dumps(app.run(max_frames=args.max_frames)))
    return 0
