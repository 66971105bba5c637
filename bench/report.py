"""Time `emotion-edge report` on a synthetic day: one event a second for 24 h (86,400 events), up to 4 faces.

    python bench/report.py            # prints the seconds of the report alone (target: under 10 s)

The recording is written first through the recorder's own store (not timed), then `write_report` draws every
figure, the summaries and the index, as the command does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history_day import synthetic_day  # noqa: E402

from emotion_edge.device.history.report import write_report  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=86400, help="length of the synthetic recording (default: a day)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "day.sqlite"
        started = time.perf_counter()
        events = synthetic_day(recording, args.seconds)
        written = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in Path(tmp).glob("day.sqlite*")) / 1e6
        started = time.perf_counter()
        write_report(recording, Path(tmp) / "report")
        elapsed = time.perf_counter() - started
    print(f"recording: {events} events written in {written:.2f} s, {size_mb:.1f} MB")
    print(f"report: {elapsed:.2f} s (target < 10 s)")
    return 0 if elapsed < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
