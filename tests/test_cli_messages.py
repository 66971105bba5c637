"""Logs and help (issue 14, item 9): what a person reads, from the real `emotion-edge` command in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from emotion_edge.device.model.metadata import packaged_model_path


def emotion_edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotion_edge.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def frames_config(tmp_path: Path, log_level: str) -> Path:
    """A daemon config on a looped folder of three frames, with a stats line every frame."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        assert cv2.imwrite(str(frames / f"{i}.png"), np.full((120, 160, 3), 60 * i, np.uint8))
    config = tmp_path / "config.toml"
    config.write_text(f'[camera]\nsource = "{frames}"\nloop = true\n'
                      f'[model]\npath = "{packaged_model_path()}"\nthreads = 1\n'
                      f'[pipeline]\nstats_interval_s = 0.001\n[log]\nlevel = "{log_level}"\nformat = "text"\n')
    return config


def test_text_stats_lines_carry_their_numbers(tmp_path):
    # Before: the text format printed a bare "stats"; the numbers sat only in `extra`, for the JSON format.
    result = emotion_edge("run", "--config", str(frames_config(tmp_path, "INFO")), "--max-frames", "5")
    assert result.returncode == 0, result.stderr[-2000:]
    stats = [line for line in result.stderr.splitlines() if " stats " in line or line.endswith(" stats")]
    assert stats, result.stderr[-2000:]
    assert all(re.search(r" stats .*\bfps=[0-9.]+", line) and re.search(r"\bframes=\d+", line) for line in stats), stats


def test_verbose_raises_the_log_level_of_run_over_the_config(tmp_path):
    # Before: run set up logging from [log] level after main had honoured -v, so -v did nothing.
    config = str(frames_config(tmp_path, "ERROR"))
    quiet = emotion_edge("run", "--config", config, "--max-frames", "3")
    verbose = emotion_edge("-v", "run", "--config", config, "--max-frames", "3")
    assert quiet.returncode == 0 and verbose.returncode == 0, quiet.stderr[-1000:] + verbose.stderr[-1000:]
    assert " INFO " not in quiet.stderr
    stopped = [line for line in verbose.stderr.splitlines() if " INFO emotion_edge.device.daemon.loop: stopped " in line]
    assert stopped and " frames=3 " in stopped[0], verbose.stderr[-2000:]
