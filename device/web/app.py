"""The server's Starlette app: the analyze API, the network preview (when a camera runs), the OpenAPI document.

Starlette on uvicorn's pure-Python h11 protocol: a small, well-kept ASGI stack with no compiled extensions to
build on a Pi, streaming responses for MJPEG, and python-multipart for form uploads. One event-loop thread
serves every connection; the heavy work (analysis, JPEG encoding) runs in worker threads outside the GIL.
"""

from __future__ import annotations

import logging
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emotion_edge.device.web.api import AnalyzeService
from emotion_edge.device.web.auth import TokenAuth
from emotion_edge.device.web.errors import ApiError, api_error_response, error_response
from emotion_edge.device.web.preview import Preview

log = logging.getLogger(__name__)

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def openapi_document() -> bytes:
    """The API's OpenAPI document, shipped as package data (device/web/openapi.json in the repository)."""
    return resources.files(__package__).joinpath("openapi.json").read_bytes()


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: f"no such resource: {request.url.path}; the API is described at /api/v1/openapi.json",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), message, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("request failed: %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "the device failed to answer this request; it has been logged")


def create_app(token: str | None, service: AnalyzeService | None, preview: Preview | None) -> Starlette:
    """The app; `service` or `preview` None leaves its routes out (`serve` has no camera, so no preview)."""
    openapi = openapi_document()

    async def openapi_route(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    routes = [Route("/api/v1/openapi.json", openapi_route, methods=["GET"])]
    routes += service.routes() if service is not None else []
    routes += preview.routes() if preview is not None else []
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TokenAuth, token=token)] if token is not None else [],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
    )
    app.state.service, app.state.preview = service, preview  # for benches and tests that look inside
    return app
