"""The `[http]` section of the daemon's TOML config, and the access token it names.

Kept free of web-framework imports: the daemon's config module imports it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from emotion_edge.device.config.schema import ConfigError
from emotion_edge.device.config.secrets import read_secret_file

MIN_TOKEN_LENGTH = 16
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
BIND_EXAMPLES = "use an address of this machine: 127.0.0.1 (this machine only), 0.0.0.0 or :: (every interface)"
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = 8080
    token_file: Path | None = None
    token_env: str = "EMOTION_EDGE_HTTP_TOKEN"
    max_body_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 24_000_000
    max_concurrent: int = 1
    max_queued: int = 2
    max_connections: int = 32
    max_connections_per_client: int = 8
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    analyze_threads: int = 1
    result_ttl_s: float = 300.0
    result_cache_bytes: int = 32 * 1024 * 1024
    preview_fps: float = 10.0
    jpeg_quality: int = 80

    def __post_init__(self) -> None:
        positive = ("port", "max_body_bytes", "max_pixels", "max_concurrent", "max_connections",
                    "max_connections_per_client", "header_timeout_s", "body_timeout_s", "analyze_threads",
                    "result_ttl_s", "result_cache_bytes", "preview_fps")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"field '{name}' must be positive, got {getattr(self, name)}")
        if self.port > 65535:
            raise ValueError(f"field 'port' must be 1-65535, got {self.port}")
        if self.max_queued < 0:
            raise ValueError(f"field 'max_queued' must be >= 0, got {self.max_queued}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"field 'jpeg_quality' must be 1-100, got {self.jpeg_quality}")
        problem = bind_address_problem(self.bind)
        if problem:
            raise ValueError(f"field 'bind' = {self.bind!r} {problem}; {BIND_EXAMPLES}")


def bind_address_problem(bind: str) -> str | None:
    """Why `bind` cannot be an address to listen on, judged by its form alone (no DNS lookup); None if it can.

    Checked where the address is given, so a typo such as 127.0.0.999 is named as such, not reported later as
    "serves beyond this machine, needs a token" (an address that fails to parse is not loopback).
    """
    host = bind.strip("[]")
    if not host:
        return "is empty"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or re.fullmatch(r"[0-9.]+", host):
            return "is not a valid IP address"
        if not _HOST_NAME.match(host):
            return "is neither an IP address nor a host name"
    return None


def bind_address(text: str) -> str:
    """argparse type for `--bind`: the error names the option and the bad address."""
    import argparse

    problem = bind_address_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}; {BIND_EXAMPLES}")
    return text


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine. A name other than localhost counts as not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(config: HttpConfig, environ: dict[str, str] | None = None) -> str | None:
    """The access token from `token_file`, else the `token_env` variable; None when neither is set.

    Raises ConfigError when the server would listen beyond loopback without a token, or a token is too short
    to resist guessing: both are refused at start-up rather than served open on the LAN.
    """
    environ = os.environ if environ is None else environ
    token: str | None = None
    if config.token_file is not None:
        token = read_secret_file(config.token_file, "http.token_file", f"write a token into it: {MAKE_TOKEN}")
    elif environ.get(config.token_env):
        token = environ[config.token_env].strip()
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"http: the token is {len(token)} characters; use at least {MIN_TOKEN_LENGTH}: {MAKE_TOKEN}")
    if token is None and not is_loopback(config.bind):
        raise ConfigError(f"http.bind = {config.bind!r} serves beyond this machine, which needs a token: set "
                          f"http.token_file or the {config.token_env} environment variable (make one with {MAKE_TOKEN}), "
                          "or bind to 127.0.0.1")
    return token
