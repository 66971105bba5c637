"""`emotion-edge forget` (clear this device's retained MQTT topics and Home Assistant discovery) and
`emotion-edge device-id` (the default device id, which the installer writes into the config)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emotion_edge.device.errors import UsageError


def add_forget(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("forget", help="remove this device's Home Assistant entities and retained MQTT topics",
                       description="Connect to the config's broker and clear, with empty retained messages, every "
                                   "Home Assistant discovery config and retained topic (availability, state, sensing, "
                                   "detection) this device published, also those of an earlier device id it "
                                   "recorded. Stop the daemon first. `emotion-edge install --uninstall` runs it.")
    p.add_argument("--config", type=Path, required=True, help="the daemon's TOML config ([mqtt], device_id)")
    p.add_argument("--state-dir", type=Path, help="override [service] state_dir (where the record of topics is)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to reach the broker and have it acknowledge")
    p.set_defaults(handler=_run_forget)


def _run_forget(args: argparse.Namespace) -> int:
    from emotion_edge.device.config import load_config
    from emotion_edge.device.mqtt import retained
    from emotion_edge.device.mqtt.config import Topics, client_id_for
    from emotion_edge.device.mqtt.connection import BrokerConnection
    from emotion_edge.device.mqtt.forget import forget_device
    from emotion_edge.device.statefile import StateFile

    config = load_config(args.config)
    if not config.mqtt.enabled:
        print(f"emotion-edge forget: [mqtt] is not enabled in {args.config}: nothing to remove")
        return 0
    state_dir = args.state_dir or config.service.state_dir
    cleared = forget_device(BrokerConnection.from_config(config.mqtt), client_id_for(config.mqtt, config.device_id),
                            Topics.for_device(config.device_id, config.mqtt.topic_prefix), config.mqtt.homeassistant,
                            config.device_id, StateFile(state_dir / retained.FILE_NAME), args.timeout)
    print(f"emotion-edge forget: removed {len(cleared)} retained topic(s) of device {config.device_id}")
    for topic in cleared:
        print(f"  {topic}")
    return 0


def add_device_id(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("device-id", help="print this machine's default device id (<hostname>-<8 hex>)",
                       description="The device_id a config without one gets: the hostname and 8 hex digits of a keyed "
                                   "hash of /etc/machine-id. The installer writes it into the config it creates.")
    p.add_argument("--root", type=Path, default=Path("/"),
                   help="a system image's root: its etc/machine-id and etc/hostname (default /, this machine)")
    p.set_defaults(handler=_run_device_id)


def _run_device_id(args: argparse.Namespace) -> int:
    from emotion_edge.device.config.identity import default_device_id, read_machine_id

    root: Path = args.root
    machine_id = read_machine_id((root / "etc" / "machine-id", root / "var" / "lib" / "dbus" / "machine-id"))
    if not machine_id:
        raise UsageError(f"{root}: no etc/machine-id (an image before its first boot?); leave device_id unset "
                         "and each machine derives its own at start")
    hostname = None
    if root != Path("/"):
        try:
            hostname = (root / "etc" / "hostname").read_text(encoding="utf-8").strip() or None
        except OSError:
            hostname = None
        if hostname is None:
            raise UsageError(f"{root}: no etc/hostname; set device_id in the config by hand")
    print(default_device_id(machine_id=machine_id, hostname=hostname), file=sys.stdout)
    return 0
