"""`emotion-edge report`: the argparse of the recording's report (device/history/report.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from emotion_edge.device.errors import UsageError


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="draw a recording (listen --record) as figures, a summary and an index page",
                       description="Write one PNG per figure (dominant emotion, shares per interval, faces in view, "
                                   "track durations, transition matrix), summary.txt, summary.csv and index.html "
                                   "into --out. Needs matplotlib.")
    p.add_argument("recording", type=Path, metavar="FILE", help="the SQLite recording of `listen --record`")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the report (created)")
    p.add_argument("--device", help="only this device's events (default: every device in the recording)")
    p.add_argument("--interval", type=float, metavar="S",
                   help="interval of the shares and the dominant emotion, seconds (default: about 96 over the span)")
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from emotion_edge.device.history.report import write_report

    if args.interval is not None and args.interval <= 0:
        raise UsageError("--interval must be positive")
    files = write_report(args.recording, args.out, args.device, args.interval)
    print(files.index_html)
    return 0
