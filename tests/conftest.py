from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Quiet TensorFlow's start-up chatter and keep its thread pools small on 2-core CI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import synthetic  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """`emotion-edge` commands run in-process install a handler on pytest's captured stderr, which closes with
    the test; later tests' threads would then log into a closed stream."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test gets its own FER2013 parse cache, so no test sees another's."""
    monkeypatch.setenv("EMOTION_EDGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def fer_csv(tmp_path) -> Path:
    return synthetic.write_csv(tmp_path / "fer.csv")


def require_binary(name: str, package: str) -> str:
    """Path of a real peer program (mosquitto, sshd, ...); skip without it, but fail under CI's EMOTION_EDGE_REQUIRE_PEERS=1."""
    import shutil

    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    message = f"{name} not found: install Debian's {package} package (apt-get install {package})"
    if os.environ.get("EMOTION_EDGE_REQUIRE_PEERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (tests only ever talk to loopback)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
