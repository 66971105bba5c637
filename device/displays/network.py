"""The device's own IPv4 address, for people who need to reach it (the OLED shows it)."""

from __future__ import annotations

import socket
from typing import Callable

IpProvider = Callable[[], "str | None"]


def primary_ipv4(socket_factory: Callable[..., socket.socket] = socket.socket) -> str | None:
    """The address of the interface that carries the default route, or None when there is none.

    Connecting a UDP socket only asks the kernel to pick a route and source address; no packet is sent,
    so this works offline and in tests. The target is a documentation address (TEST-NET-1): nothing answers
    there, yet the kernel routes it like any other address, through the default route.
    """
    try:
        with socket_factory(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address in ("0.0.0.0", "") else address
