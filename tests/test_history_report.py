"""`emotion-edge report`: the numbers (shares, faces, durations, transitions) against recordings whose answer is
known, the figures' plotted series against those numbers, the files' sizes, the command itself."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.history import DAY_START, LABELS, event, synthetic_day
from helpers.peers import require_module

from emotion_edge.device.history.analysis import analyse
from emotion_edge.device.history.store import RecordStore

require_module("matplotlib", "train")
PIL = require_module("PIL.Image")

from emotion_edge.device.history.report import FIGURES, plot_faces, plot_shares, write_report  # noqa: E402

T0 = DAY_START


def _known(path: Path) -> Path:
    """Two faces for one minute: track 1 happy 30 s then sad 30 s; track 2 neutral the whole minute, then 60 s of
    nobody, then track 3 angry for 30 s. With 60 s intervals: [25% happy, 25% sad, 50% neutral], [empty], [angry]."""
    store = RecordStore(path)
    store.append([
        event("cam", 1, T0, "new", 1, 0.0, None, "happy"),
        event("cam", 2, T0, "new", 2, 0.0, None, "neutral"),
        event("cam", 3, T0 + 30, "update", 1, 30.0, "happy", "sad"),
        event("cam", 4, T0 + 60, "end", 1, 60.0, "sad", None),
        event("cam", 5, T0 + 60, "end", 2, 60.0, "neutral", None),
        event("cam", 6, T0 + 120, "new", 3, 0.0, None, "angry"),
        event("cam", 7, T0 + 150, "end", 3, 30.0, "angry", None),
        event("cam", 7, T0 + 150, "end", 3, 30.0, "angry", None),  # a redelivery: kept once
    ])
    store.close()
    return path


def test_the_numbers_of_a_recording_whose_answer_is_known(tmp_path):
    with sqlite3.connect(_known(tmp_path / "k.sqlite")) as db:
        history = analyse(db, interval_s=60)
    assert history.labels == ("angry", "happy", "sad", "neutral")
    assert list(history.edges - T0) == [0, 60, 120, 180]
    shares = history.shares
    assert shares[0] == pytest.approx([0, 25, 25, 50]) and np.isnan(shares[1]).all()
    assert shares[2] == pytest.approx([100, 0, 0, 0])
    assert history.dominant == ["neutral", None, "angry"]
    assert list(history.mean_faces) == pytest.approx([2, 0, 0.5])
    assert list(history.faces_t - T0) == [0, 60, 120, 150] and list(history.faces_n) == [2, 0, 1, 0]
    assert sorted(history.durations_s) == [30, 60, 60]
    assert history.transitions[1, 2] == 1 and history.transitions.sum() == 1  # happy -> sad, once
    assert history.events == 7


def _reference_shares(path: Path, edges: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """Second by second, which emotion each open track shows: an independent, slow count of face-seconds."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT unix, type, track_id, emotion FROM events ORDER BY seq").fetchall()
    per_second = np.zeros((int(edges[-1] - edges[0]), len(labels)))
    showing: dict[int, str] = {}
    times = [r[0] for r in rows] + [rows[-1][0]]  # tracks still open count until the last event
    for (unix, kind, track, emotion), until in zip(rows, times[1:]):
        if kind == "end":
            showing.pop(track, None)
        else:
            showing[track] = emotion
        for second in range(int(unix - edges[0]), int(until - edges[0])):
            for shown in showing.values():
                per_second[second, labels.index(shown)] += 1
    seconds = per_second.reshape(len(edges) - 1, -1, len(labels)).sum(axis=1)
    total = seconds.sum(axis=1, keepdims=True)
    return np.where(total > 0, 100 * seconds / np.maximum(total, 1), np.nan)


def test_the_plotted_series_match_an_independent_count_and_the_summary_csv(tmp_path):
    recording = tmp_path / "hours.sqlite"
    synthetic_day(recording, seconds=3 * 3600)
    files = write_report(recording, tmp_path / "report", interval_s=600)
    with sqlite3.connect(recording) as db:
        history = analyse(db, interval_s=600)
    reference = _reference_shares(recording, history.edges, history.labels)
    assert np.allclose(history.shares, reference, equal_nan=True)

    lines = plot_shares(history).axes[0].get_lines()
    assert [line.get_label() for line in lines] == list(history.labels)
    for i, line in enumerate(lines):
        assert np.allclose(np.asarray(line.get_ydata(), float), reference[:, i], equal_nan=True)
    faces_line = plot_faces(history).axes[0].get_lines()[0]
    assert list(faces_line.get_ydata()[1:-1]) == list(history.faces_n)
    assert max(history.faces_n) <= 4

    with files.summary_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 18  # 3 h in 10 min intervals
    for k, row in enumerate(rows):
        for i, label in enumerate(history.labels):
            assert float(row[f"share_{label}_pct"]) == pytest.approx(reference[k, i], abs=1e-3)
        assert row["dominant"] == history.labels[int(np.nanargmax(reference[k]))]

    sizes = {name: PIL.open(path).size for name, path in files.figures.items()}
    assert sizes == {"dominant": (1000, 400), "shares": (1000, 400), "faces": (1000, 400),
                     "durations": (1000, 400), "transitions": (700, 600)}
    index = files.index_html.read_text()
    assert all(f"src='{name}.png'" in index for name in FIGURES)
    assert "share of face-seconds" in files.summary_txt.read_text()
    assert set(LABELS) >= set(history.labels)


def test_the_report_command_writes_every_file_and_refuses_an_empty_recording(tmp_path):
    recording = _known(tmp_path / "k.sqlite")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "emotion_edge.main", "report", str(recording), "--out", str(out),
                           "--interval", "60"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{name}.png" for name in FIGURES] + ["index.html", "summary.csv", "summary.txt"])
    RecordStore(tmp_path / "empty.sqlite").close()
    empty = subprocess.run([sys.executable, "-m", "emotion_edge.main", "report", str(tmp_path / "empty.sqlite"),
                            "--out", str(out)], capture_output=True, text=True)
    assert empty.returncode == 2 and "no events" in empty.stderr
    missing = subprocess.run([sys.executable, "-m", "emotion_edge.main", "report", str(tmp_path / "nope.sqlite"),
                              "--out", str(out)], capture_output=True, text=True)
    assert missing.returncode == 2 and "no recording" in missing.stderr
