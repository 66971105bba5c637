"""The default device id: unique per machine and stable across restarts, for a config that sets no `device_id`.

Two devices left on one constant default would share an MQTT client id (the broker kicks one off whenever the
other connects) and merge into one Home Assistant device. The default is therefore `<hostname>-<8 hex>`, the hex
from /etc/machine-id (systemd's per-install id, kept across reboots). The machine id itself is not published:
systemd asks applications to use a hash of it keyed to the application (machine-id(5)), so only the first 8 hex
digits of sha256("emotion-edge:" + machine-id) appear. Without a machine id the hostname alone is used; without
either, "emotion-edge". The result is sanitized to [a-z0-9_-], valid as one MQTT topic level and in Home
Assistant's discovery ids.
"""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
FALLBACK = "emotion-edge"
_HOSTNAME_MAX = 32


def sanitize(name: str) -> str:
    """Lower case, every run of characters outside [a-z0-9_-] as one `-`, no leading or trailing `-`."""
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")


def read_machine_id(files: tuple[Path, ...] | None = None) -> str:
    """The first non-empty machine id of `files` (default MACHINE_ID_FILES, looked up at call time); "" if none."""
    for path in MACHINE_ID_FILES if files is None else files:
        try:
            value = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            return value
    return ""


def default_device_id(machine_id: str | None = None, hostname: str | None = None) -> str:
    """`<hostname>-<8 hex of the keyed machine-id hash>`; the arguments replace the machine's own (tests)."""
    machine_id = read_machine_id() if machine_id is None else machine_id
    hostname = socket.gethostname() if hostname is None else hostname
    host = sanitize(hostname.split(".")[0])[:_HOSTNAME_MAX].strip("-_")
    tag = hashlib.sha256(f"emotion-edge:{machine_id}".encode()).hexdigest()[:8] if machine_id.strip() else ""
    return "-".join(part for part in (host, tag) if part) or FALLBACK
