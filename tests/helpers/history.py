"""Recordings for the report's tests: bench/history_day.py's generator (one for the bench and the tests; bench/
imports nothing from tests/, so the tests load it from there)."""

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "bench" / "history_day.py"
_spec = importlib.util.spec_from_file_location("emotion_edge_bench_history_day", _PATH)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

LABELS = _module.LABELS
DAY_START = _module.DAY_START
face = _module.face
event = _module.event
synthetic_day = _module.synthetic_day
