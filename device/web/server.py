"""Run the app on uvicorn in a background thread of the daemon (or of `emotion-edge serve`), and stop it cleanly.

The socket is bound here, before the thread starts, so a port in use is an immediate, specific error instead
of a log line from inside uvicorn's thread.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import uvicorn

from emotion_edge.device.config import DaemonConfig
from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.detection import make_detector
from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.imaging import WEB_FORMATS, ImagePolicy
from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.model.reload import load_replacement
from emotion_edge.device.web.api import Analyzer, AnalyzerPool, AnalyzeService
from emotion_edge.device.web.app import create_app
from emotion_edge.device.web.config import HttpConfig, resolve_token
from emotion_edge.device.web.connections import ConnectionGuard, ConnectionLimits
from emotion_edge.device.web.preview import Preview
from emotion_edge.device.web.results_cache import ResultsCache

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
# Streams end within one preview frame of `stopping`; past this, uvicorn cancels whatever is left.
GRACEFUL_SHUTDOWN_S = 2


class ServerError(EmotionEdgeError, OSError):
    """The HTTP server cannot listen or did not start."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port; ServerError (an OSError: port in use, no such address) names both."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on accepted sockets whose proto
    # says TCP, and with Nagle on, every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class HttpServer:
    """uvicorn serving one app from a daemon thread; `stop()` ends open streams and joins the thread."""

    def __init__(self, app, config: HttpConfig, stopping: threading.Event | None = None,
                 service: AnalyzeService | None = None):
        self.app = app
        self.service = service
        self.config = config
        self.stopping = stopping or threading.Event()
        # Not uvicorn's limit_concurrency: it counts idle connections and answers in plain text (connections.py).
        self.guard = ConnectionGuard(ConnectionLimits(config.max_connections, config.max_connections_per_client,
                                                      config.header_timeout_s, config.body_timeout_s))
        self.server = uvicorn.Server(uvicorn.Config(
            app, host=config.bind, port=config.port, http=self.guard.protocol_factory(), ws="none", lifespan="off",
            loop="asyncio", log_config=None, access_log=False,  # access lines would log ?token= query strings
            timeout_keep_alive=5,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S))
        self.thread: threading.Thread | None = None
        self.port = config.port

    @property
    def url(self) -> str:
        host = f"[{self.config.bind}]" if ":" in self.config.bind else self.config.bind
        return f"http://{host}:{self.port}"

    def start(self) -> HttpServer:
        sock = bind_socket(self.config.bind, self.config.port)
        self.port = sock.getsockname()[1]
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise ServerError(f"the HTTP server on {self.url} did not start (see the log above)")
            time.sleep(0.01)
        log.info("http server listening on %s", self.url, extra={"url": self.url})
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(GRACEFUL_SHUTDOWN_S + 3.0)

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_analyzers(config: DaemonConfig) -> list[Analyzer]:
    """The API's own detector and classifier per concurrent analysis: LiteRT interpreters are not thread-safe,
    so none is shared with the camera loop or another request."""
    threads = config.http.analyze_threads
    return [Analyzer(make_detector(config.detector), EmotionClassifier(config.model.path, threads=threads), threads)
            for _ in range(config.http.max_concurrent)]


def build_server(config: DaemonConfig, live: LiveState | None,
                 model_path: Callable[[], Path] | None = None) -> HttpServer:
    """The server for a config: the analyze API always, the preview when there is a camera (`live`).

    `model_path` gives the model the daemon runs now, so the API follows its hot reloads. Raises ConfigError
    for a missing or weak token (before any model is loaded).
    """
    http = config.http
    token = resolve_token(http)
    stopping = threading.Event()
    service = AnalyzeService(AnalyzerPool(make_analyzers(config), http.max_queued),
                             ResultsCache(http.result_cache_bytes, http.result_ttl_s),
                             ImagePolicy(WEB_FORMATS, http.max_pixels), http.max_body_bytes, model_path)
    preview = Preview(live, config.device_id, http.preview_fps, http.jpeg_quality, stopping) if live is not None else None
    return HttpServer(create_app(token, service, preview), http, stopping, service)


class ServedModel:
    """`serve`'s model across SIGHUP, as `run` does it: the model now at [model] path replaces the served one only
    once it loads and keeps the labels; otherwise the API goes on with the old one and the log says why.

    Validation happens here, on the thread that handles the signal; the analyzers then switch on their next
    request (Analyzer.follow), each loading its own copy in its own worker thread, since LiteRT interpreters are
    not thread-safe. A deploy points [model] path (a symlink) at the new file and sends SIGHUP.
    """

    def __init__(self, path: Path, service: AnalyzeService, threads: int):
        self.path = path
        self.threads = threads
        self.classifier = service.pool.analyzers[0].classifier
        self.current = self.classifier.path
        service.model_path = lambda: self.current

    def reload(self) -> bool:
        """Switch to the model now at `path` if it validates; False (logged with the reason) keeps the served one."""
        target = self.path.resolve()
        if target == self.current:
            log.info("reload: %s is already the served model", target)
            return True
        try:
            candidate = load_replacement(target, self.threads, self.classifier)
        except (ValueError, OSError) as exc:
            log.error("reload refused, keeping model %s: %s", self.classifier.sha256[:12], exc,
                      extra={"target": str(target), "kept_sha256": self.classifier.sha256})
            return False
        old, self.classifier, self.current = self.classifier.sha256, candidate, candidate.path
        log.info("reloaded model %s (was %s)", candidate.sha256[:12], old[:12],
                 extra={"model_sha256": candidate.sha256, "previous_sha256": old, "path": str(target)})
        return True


def start_for_daemon(config: DaemonConfig, live: LiveState,
                     model_path: Callable[[], Path] | None = None) -> HttpServer | None:
    """The daemon's server, started; None when disabled or when it cannot start (logged once: the camera loop and
    MQTT go on without it). A token problem is a config error and stops start-up."""
    if not config.http.enabled:
        return None
    server = build_server(config, live, model_path)
    try:
        return server.start()
    except OSError as exc:
        log.error("http server disabled: %s", exc, extra={"bind": config.http.bind, "port": config.http.port})
        return None
