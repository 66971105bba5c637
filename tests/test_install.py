"""The systemd unit passes systemd's own checks, and install.sh is idempotent and never overwrites a config."""

import os
import re
import subprocess
import sys
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

