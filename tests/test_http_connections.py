"""Idle, slow and too many connections against the real server on real loopback sockets (issue 14, item 3).

Before: 33 sockets that sent nothing locked every client out with a plain-text 503 until they closed.
"""

from __future__ import annotations

import socket

import httpx
import pytest
from helpers.peers import wait_until
from helpers.webserver import api_config, serving

PER_CLIENT = 4
TIMEOUT_S = 1.0  # the server's header and body timeouts here; the waits below allow 20 times as long


@pytest.fixture
def server():
    config = api_config(max_connections=12, max_connections_per_client=PER_CLIENT, header_timeout_s=TIMEOUT_S,
                        body_timeout_s=TIMEOUT_S)
    with serving(config) as running:
        yield running


def idle(server, source: str = "127.0.0.1") -> socket.socket:
    """A connection that sends nothing, from `source` (any 127.x address is this machine on Linux)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(30)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (what it sent before, if anything, is read and ignored)."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
        return True  # b"": end of file
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def get(server, source: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=server.url, transport=transport, timeout=30) as client:
        return client.get("/api/v1/openapi.json")


def test_a_flood_of_idle_connections_from_one_address_does_not_lock_out_another(server):
    flood = [idle(server, "127.0.0.2") for _ in range(40)]  # more than uvicorn's old limit of 32
    try:
        assert get(server).status_code == 200  # a client at another address is served meanwhile
        # Every idle one is closed after the header timeout, the refused ones included.
        wait_until(lambda: all(closed_by_server(s) for s in flood), "the idle connections closed", timeout=20)
        assert server.guard.timed_out >= PER_CLIENT
    finally:
        for sock in flood:
            sock.close()


def test_over_the_per_client_cap_the_answer_is_the_json_503_with_retry_after_then_service_resumes(server):
    flood = [idle(server) for _ in range(PER_CLIENT)]
    try:
        response = get(server)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == "too_many_connections"
        assert "retry" in response.json()["error"]["message"]
        assert int(response.headers["retry-after"]) >= 1
        wait_until(lambda: all(closed_by_server(s) for s in flood), "the idle connections closed", timeout=20)
        assert get(server).status_code == 200
    finally:
        for sock in flood:
            sock.close()


def test_slow_headers_and_a_slow_body_are_cut_off(server):
    headers = idle(server)
    headers.sendall(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: device\r\n")  # never the blank line
    body = idle(server)
    body.sendall(b"POST /api/v1/analyze HTTP/1.1\r\nHost: device\r\nContent-Type: image/png\r\n"
                 b"Content-Length: 100000\r\n\r\n" + b"\x89PNG" + b"\0" * 100)  # and then nothing more
    try:
        wait_until(lambda: closed_by_server(headers), "the slow head cut off", timeout=20)
        wait_until(lambda: closed_by_server(body), "the slow body cut off", timeout=20)
        assert get(server).status_code == 200
    finally:
        headers.close()
        body.close()


def test_a_keep_alive_client_and_a_stream_are_not_cut_off_while_they_work(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:  # one connection, several requests
        for _ in range(3):
            assert client.get("/api/v1/openapi.json").status_code == 200
    assert server.guard.refused == 0
