"""`emotion-edge report FILE --out DIR`: a recording as pictures (one PNG per figure), summary.txt, summary.csv and
an index.html showing them all. matplotlib (the workstation extra, or `pip install matplotlib` on a Pi) is
imported only here, and drawn through `matplotlib.figure.Figure` on Agg: no pyplot, no global figure state.
"""

from __future__ import annotations

import csv
import html
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from emotion_edge.device.history.analysis import History, analyse
from emotion_edge.device.history.store import RecordStore
from emotion_edge.device.mqtt.events import iso_utc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

SIZE_IN = (10.0, 4.0)
DPI = 100  # every figure is 1000 x 400 pixels, the transition matrix 700 x 600
COLORS = {"angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#f2b701", "sad": "#1f77b4",
          "surprise": "#ff7f0e", "neutral": "#7f7f7f"}


@dataclass(frozen=True)
class ReportFiles:
    figures: dict[str, Path]
    summary_txt: Path
    summary_csv: Path
    index_html: Path


def color(label: str) -> str:
    return COLORS.get(label, "#17becf")


def _times(unix: np.ndarray) -> np.ndarray:
    return (np.asarray(unix) * 1000).astype("datetime64[ms]")


def _figure(size: tuple[float, float] = SIZE_IN) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _time_axis(ax, history: History) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")
    ax.set_xlim(_times(history.edges[[0, -1]]))
    ax.grid(True, alpha=0.3)


def plot_dominant(history: History) -> Figure:
    """One bar per interval at the dominant emotion's row; empty where no face was in view."""
    fig = _figure()
    ax = fig.add_subplot()
    starts, width = _times(history.edges[:-1]), np.timedelta64(int(history.interval_s * 1000), "ms")
    dominant = history.dominant
    for i, label in enumerate(history.labels):
        spans = [(start, width) for start, d in zip(starts, dominant) if d == label]
        if spans:
            ax.broken_barh(spans, (i - 0.4, 0.8), color=color(label), label=label)
    ax.set_yticks(range(len(history.labels)), history.labels)
    ax.set_ylim(-0.6, len(history.labels) - 0.4)
    ax.set_ylabel("dominant emotion")
    ax.set_title(f"The room's dominant emotion per {_duration(history.interval_s)} (most face-seconds)")
    _time_axis(ax, history)
    return fig


def plot_shares(history: History) -> Figure:
    """A line per emotion: its percent of the face-seconds of each interval, at the interval's middle."""
    fig = _figure()
    ax = fig.add_subplot()
    middles = _times((history.edges[:-1] + history.edges[1:]) / 2)
    shares = history.shares
    for i, label in enumerate(history.labels):
        ax.plot(middles, shares[:, i], marker=".", color=color(label), label=label)
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of face-seconds (%)")
    ax.set_title(f"Share of each emotion per {_duration(history.interval_s)}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="emotion")
    _time_axis(ax, history)
    return fig


def plot_faces(history: History) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    times = np.concatenate([[history.edges[0]], history.faces_t, [history.edges[-1]]])
    counts = np.concatenate([[0], history.faces_n, [history.faces_n[-1] if len(history.faces_n) else 0]])
    ax.plot(_times(times), counts, drawstyle="steps-post", color="#2ca02c", linewidth=0.6,
            alpha=0.5, label="faces in view")
    middles = _times((history.edges[:-1] + history.edges[1:]) / 2)
    ax.plot(middles, history.mean_faces, color="black", linestyle="--", marker=".",
            label=f"mean per {_duration(history.interval_s)}")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("faces in view")
    ax.set_title("Faces in view over time")
    ax.legend(loc="upper right")
    _time_axis(ax, history)
    return fig


def plot_durations(history: History) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    durations = history.durations_s
    if len(durations):
        top = max(float(np.percentile(durations, 99)), 1.0)
        ax.hist(np.clip(durations, 0, top), bins=40, range=(0, top), color="#1f77b4", label=f"{len(durations)} tracks")
        ax.axvline(float(np.median(durations)), color="black", linestyle="--",
                   label=f"median {np.median(durations):.1f} s")
        ax.legend(loc="upper right")
    ax.set_xlabel("track duration (s; the last bin holds everything above the 99th percentile)")
    ax.set_ylabel("tracks")
    ax.set_title("How long faces stayed in view (track durations)")
    return fig


def plot_transitions(history: History) -> Figure:
    fig = _figure((7.0, 6.0))
    ax = fig.add_subplot()
    matrix = history.transitions
    image = ax.imshow(matrix, cmap="Blues")
    n = len(history.labels)
    ax.set_xticks(range(n), history.labels, rotation=45, ha="right")
    ax.set_yticks(range(n), history.labels)
    ax.set_xlabel("to emotion")
    ax.set_ylabel("from emotion")
    peak = matrix.max() if matrix.size else 0
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        color="white" if matrix[i, j] > peak / 2 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, label="changes (count)")
    ax.set_title("Emotion transitions of a face (count of changes)")
    return fig


FIGURES: dict[str, tuple[str, Callable[[History], Figure]]] = {
    "dominant": ("The room's dominant emotion over time", plot_dominant),
    "shares": ("Share of each emotion per interval", plot_shares),
    "faces": ("Faces in view over time", plot_faces),
    "durations": ("Track durations", plot_durations),
    "transitions": ("Emotion transition matrix", plot_transitions),
}


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:g} s"


def summary_lines(history: History) -> list[str]:
    total = history.face_seconds.sum(axis=0)
    shares = 100 * total / total.sum() if total.sum() > 0 else np.zeros_like(total)
    lines = [f"recording: {history.events} events of {', '.join(history.devices)}",
             f"from {iso_utc(history.first)} to {iso_utc(history.last)} "
             f"({_duration(round(history.last - history.first))}), intervals of {_duration(history.interval_s)}",
             f"face-seconds: {total.sum():.0f}; mean faces in view: {total.sum() / max(history.last - history.first, 1e-9):.2f}"]
    if len(history.durations_s):
        lines.append(f"tracks ended: {len(history.durations_s)}; duration median {np.median(history.durations_s):.1f} s, "
                     f"mean {history.durations_s.mean():.1f} s, max {history.durations_s.max():.1f} s")
    lines.append("share of face-seconds: " + ", ".join(f"{label} {share:.1f}%"
                                                       for label, share in zip(history.labels, shares)))
    if history.transitions.sum():
        i, j = np.unravel_index(int(np.argmax(history.transitions)), history.transitions.shape)
        lines.append(f"emotion changes: {history.transitions.sum()}; most common {history.labels[i]} -> "
                     f"{history.labels[j]} ({history.transitions[i, j]})")
    return lines


def write_summary_csv(history: History, path: Path) -> Path:
    """One row per interval: its start and end (ISO UTC), mean faces in view, dominant emotion, share per emotion."""
    shares = history.shares
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["start", "end", "mean_faces", "dominant", *(f"share_{label}_pct" for label in history.labels)])
        for k, dominant in enumerate(history.dominant):
            writer.writerow([iso_utc(history.edges[k]), iso_utc(history.edges[k + 1]), f"{history.mean_faces[k]:.4f}",
                             dominant or "", *("" if np.isnan(v) else f"{v:.4f}" for v in shares[k])])
    return path


def write_index(out: Path, figures: dict[str, Path], lines: list[str]) -> Path:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>emotion-edge report</title>",
             "<style>body{font-family:sans-serif;max-width:1040px;margin:auto}img{max-width:100%}</style></head><body>",
             "<h1>emotion-edge report</h1><pre>", html.escape("\n".join(lines)), "</pre>",
             "<p><a href='summary.csv'>summary.csv</a> (one row per interval) &middot; "
             "<a href='summary.txt'>summary.txt</a></p>"]
    for name, path in figures.items():
        title = html.escape(FIGURES[name][0])
        parts.append(f"<h2>{title}</h2><img src='{path.name}' alt='{title}'>")
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts))
    return path


def write_report(recording: Path, out: Path, device: str | None = None,
                 interval_s: float | None = None) -> ReportFiles:
    store = RecordStore(recording, readonly=True)
    try:
        history = analyse(store.db, device, interval_s)
    except sqlite3.DatabaseError as exc:
        from emotion_edge.device.history.store import RecordingError

        raise RecordingError(f"cannot read {recording}: {exc}") from None
    finally:
        store.close()
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    for name, (_, draw) in FIGURES.items():
        figures[name] = out / f"{name}.png"
        draw(history).savefig(figures[name])
        log.debug("wrote %s", figures[name])
    lines = summary_lines(history)
    summary_txt = out / "summary.txt"
    summary_txt.write_text("\n".join(lines) + "\n")
    return ReportFiles(figures, summary_txt, write_summary_csv(history, out / "summary.csv"),
                       write_index(out, figures, lines))
