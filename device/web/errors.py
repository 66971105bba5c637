"""Every failure the server reports is one JSON shape: {"error": {"code": ..., "message": ...}}.

`code` is stable for programs (documented in openapi.json); `message` is for people and says what to do.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from emotion_edge.device.errors import EmotionEdgeError

# The HTTP status of each analysis error code (emotion_edge.device.imaging.ImageError.code, AnalyzeError included).
ANALYZE_STATUS = {
    "not_an_image": 400,
    "corrupt_image": 400,
    "unsupported_format": 415,
    "too_many_pixels": 413,
}


class ApiError(EmotionEdgeError):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def api_error_response(error: ApiError) -> JSONResponse:
    return error_response(error.status, error.code, str(error), error.headers)
