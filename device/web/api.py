"""`POST /api/v1/analyze` and `GET /api/v1/results/...`: the device's model for a phone or a script, no camera needed.

The JSON is `emotion_edge.device.analyze`'s, the same as `emotion-edge analyze --json` prints. Analyses run in
worker threads on analyzers of their own (LiteRT interpreters are not thread-safe, and the camera loop's must
stay the camera loop's), at most `max_concurrent` at once with at most `max_queued` waiting: beyond that a request
gets 503 with Retry-After at once, so a burst of uploads can queue neither memory nor the camera loop's CPU.
The server never fetches a URL: it analyzes only what is uploaded, so it cannot be made to call other hosts.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, Mapping, TypeVar

import anyio.to_thread
from python_multipart.multipart import parse_options_header
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emotion_edge.device.analyze import ArtifactSink, analyze_image, attach_outputs
from emotion_edge.device.detection import FaceDetector
from emotion_edge.device.imaging import ImageError, ImagePolicy
from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.web.errors import ANALYZE_STATUS, ApiError
from emotion_edge.device.web.priority import lower_thread_priority
from emotion_edge.device.web.results_cache import ResultsCache

log = logging.getLogger(__name__)

T = TypeVar("T")
UPLOAD_FIELD = "image"
MAX_NAME_LENGTH = 200
RESULT_KEY = re.compile(r"^[0-9a-f]{64}$")
RESULT_FILE = re.compile(r"^(annotated\.jpg|face[0-9]{1,3}\.png)$")
MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}
FLAGS = {"1": True, "true": True, "0": False, "false": False}


@dataclass
class Analyzer:
    """One detector and one classifier, used by one thread at a time."""

    detector: FaceDetector
    classifier: EmotionClassifier
    threads: int = 1
    refused: Path | None = None  # a model that failed to load: not retried on every request

    def follow(self, path: Path) -> None:
        """Switch to the model at `path` when it is not the one loaded (the daemon reloaded on SIGHUP).

        The daemon has validated that model before switching to it; should it fail here all the same, the
        API keeps answering with the model it has, and says so in the log.
        """
        if path in (self.classifier.path, self.refused):
            return
        try:
            self.classifier = EmotionClassifier(path, threads=self.threads)
        except (ValueError, OSError) as exc:
            self.refused = path
            log.error("analyze API: cannot load the daemon's new model %s, keeping %s: %s", path,
                      self.classifier.path, exc, extra={"target": str(path), "kept_sha256": self.classifier.sha256})
        else:
            log.info("analyze API now uses model %s", self.classifier.sha256[:12], extra={"model_sha256": self.classifier.sha256})


class AnalyzerPool:
    """Runs analyses on a fixed set of analyzers in worker threads; refuses work beyond a bounded queue.

    Used only from the server's event loop (its counters need no lock); the work itself runs in threads.
    """

    def __init__(self, analyzers: list[Analyzer], max_queued: int):
        if not analyzers:
            raise ValueError("an AnalyzerPool needs at least one analyzer")
        self.size = len(analyzers)
        self.analyzers = tuple(analyzers)  # for `serve`'s reload, which reads the served model off the first
        self.max_queued = max_queued
        self._idle: asyncio.Queue[Analyzer] = asyncio.Queue()
        for analyzer in analyzers:
            self._idle.put_nowait(analyzer)
        self._pending = 0  # running + waiting
        self.mean_s = 0.5  # moving average of one analysis, for Retry-After

    def retry_after_s(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, at the recent time per analysis."""
        waiting = max(0, self._pending - self.size) + 1
        return max(1, math.ceil(self.mean_s * waiting / self.size))

    async def run(self, work: Callable[[Analyzer], T]) -> T:
        if self._pending >= self.size + self.max_queued:
            seconds = self.retry_after_s()
            raise ApiError(503, "busy", f"the device is analyzing {self._pending} image(s); retry in {seconds} s",
                           {"Retry-After": str(seconds)})
        self._pending += 1
        try:
            analyzer = await self._idle.get()
            started = time.perf_counter()
            try:
                return await anyio.to_thread.run_sync(_niced, work, analyzer)
            finally:
                self._idle.put_nowait(analyzer)
                self.mean_s += 0.2 * (time.perf_counter() - started - self.mean_s)
        finally:
            self._pending -= 1


def _niced(work: Callable[[Analyzer], T], analyzer: Analyzer) -> T:
    lower_thread_priority()
    return work(analyzer)


@dataclass(frozen=True)
class AnalyzeOptions:
    annotate: bool = False
    crops: bool = False
    inline: bool = False  # outputs as data: URIs in the JSON rather than URLs under /api/v1/results

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> AnalyzeOptions:
        return cls(**{name: _flag(query, name) for name in ("annotate", "crops", "inline")})


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "0")
    if value.lower() in FLAGS:
        return FLAGS[value.lower()]
    raise ApiError(400, "bad_parameter", f"?{name}={value!r}: use 1 or 0")


async def _limited_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused as soon as it is known to exceed `max_bytes` (a declared length is checked first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(total, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the upload is {size:,}+ bytes, over the limit of {max_bytes:,}; "
                                           "send a smaller image")


async def _replay(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def read_upload(request: Request, max_bytes: int) -> tuple[bytes, str]:
    """The uploaded image and its name: the `image` part of a multipart form, else the whole body.

    The declared content type only tells a form from a raw body; what the bytes are is sniffed later.
    """
    body = await _limited_body(request, max_bytes)
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        return body, "upload"
    boundary = params.get(b"boundary")
    if boundary and b"--" + boundary + b"--" not in body:
        # The parser would silently drop the unfinished part: a cut-short upload would read as "no image part".
        raise ApiError(400, "truncated_upload", f"the multipart form ends after {len(body):,} bytes without its "
                                               "closing boundary: the upload was cut short; send it again whole")
    try:
        form = await MultiPartParser(request.headers, _replay(body), max_files=1, max_fields=8).parse()
    except (MultiPartException, ValueError, KeyError) as exc:
        raise ApiError(400, "bad_multipart", f"the multipart form could not be parsed ({exc}); "
                                             f"send the image as a file part named '{UPLOAD_FIELD}'") from None
    try:
        part = form.get(UPLOAD_FIELD)
        if not isinstance(part, UploadFile):
            raise ApiError(400, "missing_image", f"the form has no file part named '{UPLOAD_FIELD}'")
        return await part.read(), (part.filename or "upload")[:MAX_NAME_LENGTH]
    finally:
        await form.close()


def _data_uri(name: str, data: bytes) -> str:
    media_type = MEDIA_TYPES[name[name.rfind("."):]]
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def result_sink(cache: ResultsCache, key: str, prefix: str, inline: bool) -> ArtifactSink:
    """URLs under the results cache, or data: URIs when asked to inline or when the cache cannot hold a file."""

    def store(name: str, data: bytes) -> str:
        if not inline and cache.put(key, name, data):
            return f"{prefix}/api/v1/results/{key}/{name}"
        return _data_uri(name, data)

    return store


class AnalyzeService:
    def __init__(self, pool: AnalyzerPool, cache: ResultsCache, policy: ImagePolicy, max_body_bytes: int,
                 model_path: Callable[[], Path] | None = None):
        self.pool = pool
        self.cache = cache
        self.policy = policy
        self.max_body_bytes = max_body_bytes
        # The model the camera loop runs now (the daemon's, after hot reloads); None keeps the one loaded.
        self.model_path = model_path

    def _analyze(self, analyzer: Analyzer, data: bytes, name: str, options: AnalyzeOptions, prefix: str) -> dict:
        """Runs in a worker thread: the same functions as `emotion-edge analyze`, outputs to the cache."""
        if self.model_path is not None:
            analyzer.follow(self.model_path())
        try:
            result, image, faces = analyze_image(data, name, analyzer.detector, analyzer.classifier, self.policy)
        except ImageError as exc:
            raise ApiError(ANALYZE_STATUS.get(exc.code, 400), exc.code, str(exc)) from None
        sink = result_sink(self.cache, result["id"].split(":", 1)[1], prefix, options.inline)
        attach_outputs(result, image, faces, analyzer.classifier, sink if options.annotate else None,
                       sink if options.crops else None)
        return result

    async def analyze(self, request: Request) -> Response:
        options = AnalyzeOptions.from_query(request.query_params)
        data, name = await read_upload(request, self.max_body_bytes)
        started = time.perf_counter()
        prefix = request.scope.get("root_path", "")
        result = await self.pool.run(lambda analyzer: self._analyze(analyzer, data, name, options, prefix))
        log.info("analyzed upload", extra={"bytes": len(data), "faces": len(result["faces"]),
                                           "ms": round(1000 * (time.perf_counter() - started), 1)})
        return JSONResponse(result)

    async def result_file(self, request: Request) -> Response:
        key, name = request.path_params["key"], request.path_params["name"]
        data = self.cache.get(key, name) if RESULT_KEY.match(key) and RESULT_FILE.match(name) else None
        if data is None:
            raise ApiError(404, "result_not_found", f"no result {key}/{name}: results are kept for "
                                                    f"{self.cache.ttl_s:.0f} s; analyze the image again")
        return Response(data, media_type=MEDIA_TYPES[name[name.rfind("."):]], headers={"Cache-Control": "private, max-age=60"})

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/analyze", self.analyze, methods=["POST"]),
            Route("/api/v1/results/{key}/{name}", self.result_file, methods=["GET"]),
        ]

