"""Access token for every route, when the server has one.

A token is required whenever the server listens beyond loopback (config.resolve_token refuses to start
otherwise) and is checked on every request, the status page and the stream included. Programs send
`Authorization: Bearer TOKEN`; a browser cannot add headers to an <img> tag or a typed URL, so `?token=TOKEN`
works too (the status page passes it on to the stream and its state requests).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from emotion_edge.device.web.errors import error_response


def presented_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query["token"][-1] if query.get("token") else None


class TokenAuth:
    """ASGI middleware: 401 with a JSON error unless the request presents the token (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = presented_token(scope)
        if presented is not None and hmac.compare_digest(presented.encode(), self.token):
            await self.app(scope, receive, send)
            return
        code, message = (("missing_token", "this server needs a token: send 'Authorization: Bearer TOKEN' or ?token=TOKEN")
                         if presented is None else ("wrong_token", "the token does not match the server's"))
        response = error_response(401, code, message, {"WWW-Authenticate": 'Bearer realm="emotion-edge"'})
        await response(scope, receive, send)
