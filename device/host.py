"""Facts about the machine the device runs on: the CPU temperature, for the daemon's stats (and Home Assistant's
*CPU temperature* entity) and doctor's check; one reader, so both report the same zone. A leaf: imports nothing of
ours.

Why it matters: a Pi throttles its CPU at 80 C, which slows inference.
"""

from __future__ import annotations

import re
from pathlib import Path

THERMAL_ROOT = Path("/sys/class/thermal")
# Thermal zone types that name the CPU: cpu-thermal (a Pi), cpu_thermal / cpu0-thermal / soc_thermal (other ARM
# boards), x86_pkg_temp (Intel's package), k10temp and coretemp (where a kernel names a zone after the driver).
# Other zones (acpitz, a Wi-Fi chip, a battery) measure something else.
CPU_ZONE_TYPE = re.compile(r"cpu|soc|x86_pkg_temp|k10temp|coretemp", re.IGNORECASE)


def _zone_number(zone: Path) -> int:
    digits = zone.name.removeprefix("thermal_zone")
    return int(digits) if digits.isdigit() else 1 << 30


def _zone_type(zone: Path) -> str:
    try:
        return (zone / "type").read_text().strip()
    except OSError:
        return ""


def cpu_zones(root: Path = THERMAL_ROOT) -> list[Path]:
    """The zones to read, best first: those whose type names the CPU (in zone order), else thermal_zone0."""
    zones = sorted(root.glob("thermal_zone*"), key=_zone_number)
    named = [zone for zone in zones if CPU_ZONE_TYPE.search(_zone_type(zone))]
    return named or [zone for zone in zones if zone.name == "thermal_zone0"]


def cpu_temperature_c(root: Path = THERMAL_ROOT) -> float | None:
    """The CPU's temperature in degrees Celsius (0.1 C), or None where the kernel exposes none (containers, most
    VMs); `root` is /sys/class/thermal, or a folder of the same shape (tests)."""
    for zone in cpu_zones(root):
        try:
            return round(int((zone / "temp").read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            continue  # a zone that cannot be read right now (some report EINVAL while their sensor sleeps)
    return None
