"""The systemd unit passes systemd's own checks, and install.sh is idempotent and never overwrites a config."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.peers import require_binary

REPO = Path(__file__).parent.parent
UNIT = REPO / "systemd" / "emotion-edge.service"
INSTALL = REPO / "systemd" / "install.sh"
EMOTION_EDGE = str(Path(sys.executable).with_name("emotion-edge"))


@pytest.mark.peer
def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = require_binary("systemd-analyze", "systemd")
    # verify insists that ExecStart's binary exists; the real one lives in the Pi's venv, so the copy checked
    # here runs this venv's emotion-edge instead. Every other line is verified exactly as shipped.
    unit = tmp_path / "emotion-edge.service"
    text = UNIT.read_text()
    assert text.count("ExecStart=/opt/emotion-edge/venv/bin/emotion-edge ") == 1
    unit.write_text(text.replace("ExecStart=/opt/emotion-edge/venv/bin/emotion-edge", f"ExecStart={EMOTION_EDGE}"))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.peer
def test_unit_security_exposure_is_at_most_2_5():
    analyze = require_binary("systemd-analyze", "systemd")
    done = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(UNIT)], capture_output=True, text=True)
    match = re.search(r"Overall exposure level for emotion-edge\.service: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.5, done.stdout


def test_unit_is_a_notify_service_with_a_watchdog_and_restarts():
    settings = dict(line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify" and settings["NotifyAccess"] == "main"
    assert int(settings["WatchdogSec"]) > 0 and settings["Restart"] == "on-failure"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID" and settings["User"] == "emotion-edge"


def _install(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), "--root", str(root), "--no-venv", "--emotion-edge", EMOTION_EDGE,
                           *args], capture_output=True, text=True)


def _tree(root: Path) -> dict[str, str]:
    """Every path under root with its content (files), link target (links) or '/' (folders)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = f"-> {os.readlink(path)}" if path.is_symlink() else "/" if path.is_dir() else path.read_bytes().hex()
    return out


def test_install_is_idempotent_and_keeps_an_edited_config(tmp_path):
    root = tmp_path / "pi"
    first = _install(root)
    assert first.returncode == 0, first.stderr
    config = root / "etc" / "emotion-edge" / "config.toml"
    assert config.read_text() == (REPO / "examples" / "config.toml").read_text()
    unit = (root / "etc" / "systemd" / "system" / "emotion-edge.service").read_text()
    assert "ExecStart=/opt/emotion-edge/venv/bin/emotion-edge run --config /etc/emotion-edge/config.toml" in unit
    models = root / "var" / "lib" / "emotion-edge" / "models"
    current = os.readlink(models / "current")
    assert re.fullmatch(r"[0-9a-f]{64}\.tflite", current) and (models / current.replace(".tflite", ".json")).exists()
    assert oct(models.stat().st_mode & 0o7777) == "0o2775"

    config.write_text(config.read_text().replace('# device_id = "hall"', 'device_id = "hall"'))
    before = _tree(root)
    second = _install(root)
    assert second.returncode == 0, second.stderr
    assert "kept existing" in second.stdout
    assert _tree(root) == before, "a second run changes nothing, the edited config included"


def test_uninstall_keeps_config_and_models_unless_purged(tmp_path):
    root = tmp_path / "pi"
    assert _install(root, "--prefix", "/opt/ee").returncode == 0
    (root / "opt" / "ee" / "venv").mkdir(parents=True)  # stands in for the venv --no-venv skipped
    unit = (root / "etc" / "systemd" / "system" / "emotion-edge.service").read_text()
    assert "ExecStart=/opt/ee/venv/bin/emotion-edge run" in unit
    removed = _install(root, "--prefix", "/opt/ee", "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not (root / "etc" / "systemd" / "system" / "emotion-edge.service").exists()
    assert not (root / "opt" / "ee").exists()
    assert (root / "etc" / "emotion-edge" / "config.toml").exists()
    assert (root / "var" / "lib" / "emotion-edge" / "models" / "current").is_symlink()
    purged = _install(root, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc" / "emotion-edge").exists() and not (root / "var" / "lib" / "emotion-edge").exists()


def test_install_refuses_a_folder_that_is_not_a_checkout(tmp_path):
    done = _install(tmp_path / "pi", "--source", str(tmp_path))
    assert done.returncode == 1 and "is not an emotion-edge checkout" in done.stderr



def _machine(root: Path, machine_id: str = "0123456789abcdef0123456789abcdef", hostname: str = "raspberrypi") -> None:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "machine-id").write_text(machine_id + "\n")
    (root / "etc" / "hostname").write_text(hostname + "\n")


def test_install_writes_the_machines_device_id_into_a_new_config_only(tmp_path):
    from emotion_edge.device.config import load_config
    from emotion_edge.device.config.identity import default_device_id

    root = tmp_path / "pi"
    _machine(root)
    assert _install(root).returncode == 0
    config = root / "etc" / "emotion-edge" / "config.toml"
    expected = default_device_id(machine_id="0123456789abcdef0123456789abcdef", hostname="raspberrypi")
    assert load_config(config).device_id == expected and expected.startswith("raspberrypi-")
    # Stays the same when the hostname changes later, and an existing config is never touched.
    (root / "etc" / "hostname").write_text("kitchen\n")
    config.write_text(config.read_text().replace(expected, "hall"))
    assert _install(root).returncode == 0
    assert load_config(config).device_id == "hall"
    # An image before its first boot has no machine id: no id is written, each Pi derives its own at start.
    image = tmp_path / "image"
    assert _install(image).returncode == 0
    assert (image / "etc" / "emotion-edge" / "config.toml").read_text() == (REPO / "examples" / "config.toml").read_text()


@pytest.mark.peer
def test_uninstall_removes_the_devices_retained_topics_from_the_broker(tmp_path):
    from helpers.mosquitto import Mosquitto
    from helpers.peers import free_port

    from emotion_edge.device.config import load_config
    from emotion_edge.device.mqtt.publisher import MqttPublisher

    root = tmp_path / "pi"
    _machine(root)
    assert _install(root).returncode == 0
    config_path = root / "etc" / "emotion-edge" / "config.toml"
    with Mosquitto(require_binary("mosquitto", "mosquitto"), tmp_path / "broker", free_port()) as broker:
        text = config_path.read_text()
        mqtt = text.index("[mqtt]\n")
        text = text[:mqtt] + text[mqtt:].replace("enabled = false", "enabled = true", 1).replace(
            'host = "localhost"', 'host = "127.0.0.1"', 1).replace("port = 1883", f"port = {broker.port}", 1).replace(
            'spool_path = "/var/lib/emotion-edge/spool.db"', f'spool_path = "{tmp_path}/spool.db"', 1)
        config_path.write_text(text)
        config = load_config(config_path)
        # The device ran: its discovery configs and retained topics are on the broker.
        publisher = MqttPublisher(config.mqtt, config.device_id, ("happy", "sad"), lambda: "ab" * 32).start()
        deadline = time.monotonic() + 20
        while publisher.counters.connects == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        publisher.close()
        held = _retained(broker.port)
        assert f"emotion-edge/{config.device_id}/availability" in held and any(t.startswith("homeassistant/") for t in held)
        removed = _install(root, "--uninstall")
        assert removed.returncode == 0, removed.stderr
        assert "removed" in removed.stdout and _retained(broker.port) == []


def _retained(port: int) -> list[str]:
    """The topics a new subscriber to # gets as retained messages (they follow the SUBACK that start() waits for)."""
    from emotion_edge.device.mqtt.connection import BrokerConnection
    from emotion_edge.device.mqtt.listen import Listener

    listener = Listener(BrokerConnection("127.0.0.1", port), ["#"]).start()
    time.sleep(1.0)
    listener.close()
    topics = []
    while not listener.messages.empty():
        message = listener.messages.get_nowait()
        if message.retained:
            topics.append(message.topic)
    return sorted(topics)
