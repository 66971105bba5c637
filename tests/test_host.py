"""The CPU temperature: one reader for the daemon's stats (and Home Assistant's entity) and doctor's check.

A fake /sys/class/thermal in tmp_path stands for the kernel's; the stats go through a real mosquitto.
"""

from __future__ import annotations

import queue
from pathlib import Path

import pytest
from helpers.mosquitto import Mosquitto
from helpers.mqtt_support import LABELS, MODEL_SHA
from helpers.peers import free_port, require_binary, wait_until

from emotion_edge.device.doctor import HostPaths, Level, check_temperature
from emotion_edge.device.host import cpu_temperature_c, cpu_zones
from emotion_edge.device.mqtt.config import MqttConfig, Topics
from emotion_edge.device.mqtt.connection import BrokerConnection
from emotion_edge.device.mqtt.listen import Listener
from emotion_edge.device.mqtt.publisher import MqttPublisher


def thermal_tree(root: Path, zones: dict[int, tuple[str, str]]) -> Path:
    """`zones`: number -> (type, temp in millidegrees as the kernel writes it)."""
    for number, (kind, millicelsius) in zones.items():
        zone = root / f"thermal_zone{number}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(millicelsius + "\n")
    return root


@pytest.mark.parametrize(("zones", "expected"), [
    # A PC: ACPI's zone comes first, the CPU package's later; the package is the CPU.
    ({0: ("acpitz", "27800"), 1: ("iwlwifi_1", "41000"), 2: ("x86_pkg_temp", "61234")}, 61.2),
    ({0: ("acpitz", "27800"), 1: ("k10temp", "55000")}, 55.0),
    ({0: ("cpu-thermal", "48312")}, 48.3),  # a Pi
    ({0: ("gpu-thermal", "39000"), 1: ("soc_thermal", "52000")}, 52.0),
    # Zones in number order, not name order: thermal_zone2 before thermal_zone10.
    ({10: ("cpu1-thermal", "70000"), 2: ("cpu0-thermal", "66000")}, 66.0),
    ({0: ("acpitz", "30000"), 1: ("battery", "25000")}, 30.0),  # none names the CPU: thermal_zone0
    ({1: ("battery", "25000")}, None),  # nor is there a thermal_zone0: no guess
    ({}, None),
])
def test_the_zone_whose_type_names_the_cpu_is_read_else_thermal_zone0(tmp_path, zones, expected):
    assert cpu_temperature_c(thermal_tree(tmp_path / "thermal", zones)) == expected


def test_an_unreadable_cpu_zone_falls_back_to_the_next_candidate(tmp_path):
    root = thermal_tree(tmp_path, {0: ("cpu-thermal", "busy"), 3: ("x86_pkg_temp", "45000")})
    assert [zone.name for zone in cpu_zones(root)] == ["thermal_zone0", "thermal_zone3"]
    assert cpu_temperature_c(root) == 45.0
    assert cpu_temperature_c(tmp_path / "absent") is None


def next_message(listener: Listener):
    try:
        return listener.messages.get(timeout=0.5)
    except queue.Empty:
        return None


@pytest.mark.peer
def test_doctor_and_the_stats_report_the_same_zone(tmp_path):
    """The stats a real publisher sends carry the temperature doctor reports, from the CPU's zone, not zone 0."""
    root = thermal_tree(tmp_path / "thermal", {0: ("acpitz", "27800"), 1: ("x86_pkg_temp", "74312")})
    doctor = check_temperature(HostPaths(thermal=root))
    assert doctor.level is Level.WARN and doctor.detail.startswith("74.3 C")

    broker = Mosquitto(require_binary("mosquitto", "mosquitto"), tmp_path / "broker", free_port())
    with broker:
        topics = Topics.for_device("temp-cam")
        listener = Listener(BrokerConnection("127.0.0.1", broker.port), [topics.stats]).start()
        config = MqttConfig(enabled=True, host="127.0.0.1", port=broker.port, spool_path=tmp_path / "spool.db",
                            stats_interval_s=0.2, reconnect_min_s=0.1, reconnect_max_s=0.5)
        publisher = MqttPublisher(config, "temp-cam", LABELS, lambda: MODEL_SHA, thermal_root=root).start()
        try:
            message = wait_until(lambda: next_message(listener), "a stats message", 20)
        finally:
            publisher.close()
            listener.close()
    assert message.payload["cpu_temp_c"] == 74.3 == float(doctor.detail.split()[0])
