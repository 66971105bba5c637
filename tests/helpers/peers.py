"""Real peers and polling: find a peer program or optional module (skip, or fail under CI), free ports, waits."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import time
from pathlib import Path
from types import ModuleType
from typing import Callable, NoReturn, TypeVar

import pytest

T = TypeVar("T")

# Lines for pytest's terminal summary (tests/conftest.py prints them): what a peer's setup cost, e.g. the Home
# Assistant install, so CI's log shows it.
SUMMARY = pytest.StashKey[list]()


def _missing(message: str) -> NoReturn:
    """Skip on a developer's machine; fail under CI's EMOTION_EDGE_REQUIRE_PEERS=1, where nothing may be missing."""
    if os.environ.get("EMOTION_EDGE_REQUIRE_PEERS") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_binary(name: str, package: str) -> str:
    """Path of a real peer program (mosquitto, sshd, ...); skip without it, but fail under CI's EMOTION_EDGE_REQUIRE_PEERS=1."""
    import shutil

    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    _missing(f"{name} not found: install Debian's {package} package (apt-get install {package})")


def require_python(version: str) -> str:
    """A Python `version` interpreter (e.g. "3.13", for Home Assistant): `python<version>` on PATH, or pyenv's
    newest `<version>.*`; like require_binary, a missing one skips, or fails under EMOTION_EDGE_REQUIRE_PEERS=1."""
    import shutil
    import subprocess

    found = shutil.which(f"python{version}")
    if found:  # resolved: a pyenv shim on PATH may name a version that is not installed
        result = subprocess.run([found, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"),
                        key=lambda p: [int(part) for part in p.parent.parent.name.split(".") if part.isdigit()])
    if candidates:
        return str(candidates[-1])
    _missing(f"no Python {version} found (python{version} on PATH or pyenv's {pyenv_root}/versions/{version}.*): "
             f"install it, e.g. `pyenv install {version}`")


def require_module(name: str, extra: str = "test") -> ModuleType:
    """A module from an optional extra (jsonschema, selenium, ...), imported; like require_binary, a missing one
    skips on a developer's machine but fails in CI, so CI can never pass by skipping a whole test module."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _missing(f"{name} cannot be imported ({exc}): pip install -e '.[{extra}]'")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 20.0,
               describe: Callable[[], str] = lambda: "") -> T:
    """Poll `condition` until it returns something truthy, and return that; after `timeout` seconds fail, naming
    `what` and what `describe` says of the last try. The default is generous for a loaded 2-core CI machine:
    a wait returns as soon as its condition holds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}; {describe()}"
        time.sleep(0.02)
    return result


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port` (a peer that has finished starting)."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (tests only ever talk to loopback)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(process: subprocess.Popen, timeout: float) -> None:
    """Stop a peer cleanly (SIGTERM: it saves its state and closes its sockets), killed only if it will not."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
