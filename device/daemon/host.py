"""Facts about the machine the daemon runs on, for stats (CPU temperature on a Pi throttles inference)."""

from __future__ import annotations

from pathlib import Path

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature_c(path: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature in degrees Celsius, or None where the kernel exposes none (containers, most PCs)."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None
