from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# tests/ on sys.path: the `helpers` package (peers, fixtures data, synthetic FER2013) imports as `helpers.*`.
sys.path.insert(0, str(Path(__file__).parent))
# Quiet TensorFlow's start-up chatter and keep its thread pools small on 2-core CI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from helpers import synthetic  # noqa: E402


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


def pytest_terminal_summary(terminalreporter, config):
    """What peers' setup cost (the Home Assistant install and start: tests/helpers/homeassistant.py), in CI's log."""
    from helpers.peers import SUMMARY

    for line in config.stash.get(SUMMARY, []):
        terminalreporter.write_line(line)
