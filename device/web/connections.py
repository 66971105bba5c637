"""Connection limits for uvicorn's h11 protocol: idle and slow clients time out, no client takes every connection.

Why: uvicorn's `limit_concurrency` counts every open connection, idle or not, and answers past it with a
plain-text 503 without `Retry-After`; uvicorn arms no timer until a first response is sent. So 33 sockets that
send nothing locked everyone out for as long as they stayed open (slowloris). Here:

- a request head must arrive within `header_timeout_s` of the connection opening (or of the previous response
  ending): a connection that sends nothing, or drips its headers, is closed;
- a request body must arrive within `body_timeout_s` of its head;
- past `max_connections` in all, or `max_connections_per_client` from one address, the connection is answered
  with the API's JSON error (`503 too_many_connections`) and `Retry-After`, then closed; the timeouts above
  bound how long the connections that fill the server can stay.

A connection over a limit is answered when its request head arrives (answering before the client has sent
anything would race the client's own write, and a reset can discard the answer).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from emotion_edge.device.web.errors import error_response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    max_per_client: int
    header_timeout_s: float
    body_timeout_s: float

    @property
    def retry_after_s(self) -> int:
        """When a refused client should try again: by then every idle connection has timed out."""
        return max(1, math.ceil(self.header_timeout_s))


@dataclass
class ConnectionGuard:
    """One server's accepted connections, in all and per client address (the server's own state, shared by its
    protocols). Refused connections count in neither: they hold no capacity, only a socket until they are
    answered or time out."""

    limits: ConnectionLimits
    accepted: int = 0
    per_client: Counter = field(default_factory=Counter)
    refused: int = 0  # connections answered with 503 too_many_connections
    timed_out: int = 0  # connections closed for an idle or slow request

    def protocol_factory(self) -> Callable[..., H11Protocol]:
        """What uvicorn.Config(http=...) takes: it builds one protocol per connection."""
        return partial(GuardedH11Protocol, guard=self)


def over_capacity_app(limits: ConnectionLimits, why: str) -> Callable[..., Any]:
    """An ASGI app answering every request with the documented JSON 503, Retry-After, and a closed connection."""
    response = error_response(503, "too_many_connections",
                              f"the device has too many open connections ({why}); retry in "
                              f"{limits.retry_after_s} s, and close connections you do not use",
                              {"Retry-After": str(limits.retry_after_s), "Connection": "close"})

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        await response(scope, receive, send)

    return app


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the limits of the module docstring."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.guard = guard
        self._address = ""
        self._accepted = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else ""
        guard, limits = self.guard, self.guard.limits
        if guard.per_client[self._address] >= limits.max_per_client:
            self._refuse(f"{limits.max_per_client} at most from one address")
        elif guard.accepted >= limits.max_connections:
            self._refuse(f"{limits.max_connections} at most")
        else:
            self._accepted = True
            guard.accepted += 1
            guard.per_client[self._address] += 1
        self._arm(limits.header_timeout_s, "no complete request head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._accepted:
            self._accepted = False
            self.guard.accepted -= 1
            self.guard.per_client[self._address] -= 1
            if self.guard.per_client[self._address] <= 0:
                del self.guard.per_client[self._address]
        super().connection_lost(exc)

    def _refuse(self, why: str) -> None:
        self.guard.refused += 1
        self.app = over_capacity_app(self.guard.limits, why)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a new request head arrived
            self._disarm()
            if self.conn.their_state is h11.SEND_BODY:
                self._arm(self.guard.limits.body_timeout_s, "the request body did not arrive")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._deadline is not None and self.cycle is not None and self.conn.their_state is h11.DONE:
            self._disarm()  # the whole body is in

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()  # may start a pipelined request (handle_events sets its timer)
        if self.cycle is cycle and not self.transport.is_closing():
            # uvicorn's keep-alive timer ends an idle connection; this one also ends a slow next request head,
            # which uvicorn's timer stops watching at its first byte.
            self._arm(self.guard.limits.header_timeout_s, "no complete request head")

    def _arm(self, seconds: float, why: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, why, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, why: str, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.guard.timed_out += 1
        log.debug("http: closing a connection from %s: %s within %g s", self._address, why, seconds)
        self.transport.close()
