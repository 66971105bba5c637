"""`emotion-edge doctor`'s vocabulary: a check's result (OK, WARN with what to do, FAIL), the host paths the checks
read (tests point them at folders of their own), and the thresholds the checks judge by."""

from __future__ import annotations

import enum
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from emotion_edge.device.config import DaemonConfig

DEFAULT_CONFIG = Path("/etc/emotion-edge/config.toml")
SERVICE = "emotion-edge"
# A clock before this year has not been set since boot (a Pi has no battery-backed clock): TLS certificates
# look not yet valid and event timestamps are wrong.
MIN_SANE_YEAR = 2025
MIN_SPOOL_FREE_BYTES = 1024 * 1024  # below this the spool cannot hold even a short broker outage
TEMP_WARN_C = 70.0
TEMP_FAIL_C = 80.0  # the Pi firmware starts throttling the CPU at 80 degrees C
# `vcgencmd get_throttled` bits: now (0-3) and since boot (16-19).
THROTTLE_BITS = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled", 3: "soft temperature limit"}
POWER_FIX = ("use the official power supply (5 V 3 A for a Pi 4, 5 V 5 A for a Pi 5) and a short cable, "
             "and let the Pi cool (heatsink or fan, not in a closed box)")


class Level(enum.IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: what was checked, what was found, and (for WARN and FAIL) what to do."""

    name: str
    level: Level
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"{self.level.name:<4}  {self.name:<10}  {self.detail}"]
        if self.fix and self.level is not Level.OK:
            out.append(f"{'':<4}  {'':<10}  fix: {self.fix}")
        return out


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Level.OK, detail)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Level.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Level.FAIL, detail, fix)


@dataclass(frozen=True)
class HostPaths:
    """Where the checks look on this machine; tests point these at folders of their own (e.g. an empty /dev)."""

    dev: Path = Path("/dev")
    thermal: Path = Path("/sys/class/thermal")
    which: Callable[[str], str | None] = shutil.which
    timeout_s: float = 5.0


@dataclass(frozen=True)
class DoctorInput:
    """The config being checked, where it came from, and the model `run` would load with it."""

    config: DaemonConfig
    config_path: Path | None
    model_path: Path


