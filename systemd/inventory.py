"""Which devices to deploy to and how to reach them: `--host` flags or a TOML inventory.

    [defaults]                       # optional; any host key, applied to every host
    user = "pi"
    identity_file = "~/.ssh/emotion-edge"

    [[hosts]]
    address = "hall.local"           # the first host is the canary
    [[hosts]]
    address = "kitchen.local"
    port = 2222

Parsed with the daemon config's strict loader, so a typo is an error that
names the file and the key instead of a silently ignored setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import tomllib

from emotion_edge.device.config.schema import ConfigError, build

DEFAULT_COMMAND = "/opt/emotion-edge/venv/bin/emotion-edge"
DEFAULT_CONFIG = "/etc/emotion-edge/config.toml"
DEFAULT_RELOAD = "sudo -n systemctl reload emotion-edge.service"


@dataclass(frozen=True)
class Host:
    address: str  # host name or IP; `user@address[:port]` is split by parse_host_spec
    user: str | None = None
    port: int = 22
    identity_file: Path | None = None
    # The device's emotion-edge command and config (install.sh's locations).
    command: str = DEFAULT_COMMAND
    config: str = DEFAULT_CONFIG
    # How the daemon is told to load the new `current`; "" when something else does (a file watch).
    reload_command: str = DEFAULT_RELOAD
    health_timeout_s: float = 60.0
    ssh_options: tuple[str, ...] = ()  # extra `-o` settings, e.g. ["StrictHostKeyChecking=accept-new"]
    name: str = ""  # label in reports; defaults to user@address:port

    def __post_init__(self) -> None:
        if not self.address or any(c.isspace() for c in self.address) or self.address.startswith("-"):
            raise ValueError(f"field 'address' {self.address!r} is not a host name or IP")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"field 'port' must be 1-65535, got {self.port}")
        if self.health_timeout_s <= 0:
            raise ValueError(f"field 'health_timeout_s' must be positive, got {self.health_timeout_s}")

    @property
    def label(self) -> str:
        return self.name or f"{self.user + '@' if self.user else ''}{self.address}:{self.port}"

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.address}" if self.user else self.address


_SPEC = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<address>\[[^\]]+\]|[^:@\s]+)(?::(?P<port>\d+))?$")


def parse_host_spec(spec: str, **settings: object) -> Host:
    """`[user@]host[:port]` (IPv6 in brackets) plus shared settings from the command line."""
    match = _SPEC.match(spec)
    if not match:
        raise ConfigError(f"--host {spec!r}: expected [user@]host[:port]")
    address = match["address"].strip("[]")
    values = {k: v for k, v in settings.items() if v is not None}
    try:
        return Host(address=address, user=match["user"], port=int(match["port"] or values.pop("port", 22)), **values)
    except ValueError as exc:
        raise ConfigError(f"--host {spec!r}: {exc}") from None


def load_inventory(path: Path) -> list[Host]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such inventory file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(raw) - {"defaults", "hosts"})
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(unknown)}; expected [defaults] and [[hosts]]")
    defaults = raw.get("defaults", {})
    hosts = raw.get("hosts", [])
    if not isinstance(defaults, dict) or not isinstance(hosts, list) or not hosts:
        raise ConfigError(f"{path}: needs at least one [[hosts]] entry (and [defaults] must be a table)")
    out = []
    for i, entry in enumerate(hosts):
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}.hosts[{i}]: expected a table")
        out.append(build(Host, {**defaults, **entry}, f"{path}.hosts[{i}]"))
    labels = [h.label for h in out]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(f"{path}: host(s) listed twice: {', '.join(duplicates)}")
    return out
