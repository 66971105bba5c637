"""The Ansible role (systemd/ansible) end to end, as tests/test_deploy.py tests `emotion-edge deploy`: the real
sshd on a loopback port, device roots in temporary folders with real daemons (reload: `kill -HUP <pid>`), and the
venv's real ansible-playbook reading a standard INI inventory. Each runs a playbook over ssh, so each takes
half a minute or more on a busy 2-core machine: marked slow."""
# ruff: noqa: F811 -- the sshd and make_device fixtures are imported from test_deploy, then requested by name

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers.model_variants import padded_model
from helpers.peers import require_module, wait_until
from test_deploy import EMOTION_EDGE, SHIPPED, SSH_OPTIONS, Device, Sshd, _ready, make_device, sshd  # noqa: F401

from emotion_edge.device.model.metadata import file_sha256, packaged_model_path

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = ROOT / "systemd" / "ansible" / "rollout.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

pytestmark = [pytest.mark.peer, pytest.mark.slow]


@pytest.fixture(scope="module")
def ansible_playbook() -> Path:
    require_module("ansible", extra="test")  # ansible-core: the `fleet` extra, also in `test`
    return ANSIBLE_PLAYBOOK


def write_inventory(path: Path, sshd: Sshd, devices: list[Device]) -> Path:
    """An INI inventory as a fleet owner writes one; host vars point the role at each test device."""
    hosts = "".join(f"{d.root.name} ansible_host=127.0.0.1 emotion_edge_config={d.config} "
                    f"emotion_edge_reload_command='{d.host(sshd).reload_command}'\n" for d in devices)
    path.write_text(
        "[emotion_edge]\n" + hosts + "\n[emotion_edge:vars]\n"
        f"ansible_user=root\nansible_port={sshd.port}\nansible_ssh_private_key_file={sshd.key}\n"
        f"ansible_ssh_common_args='{' '.join('-o ' + o for o in SSH_OPTIONS)}'\n"
        "ansible_python_interpreter=/usr/bin/python3\n"
        "ansible_ssh_transfer_method=piped\n"  # the test sshd has no sftp subsystem
        f"emotion_edge_command={EMOTION_EDGE}\nemotion_edge_health_timeout=20\nemotion_edge_become=false\n")
    return path


def run_playbook(playbook: Path, inventory: Path, tmp_path: Path, **extra_vars: object) -> subprocess.CompletedProcess:
    config = tmp_path / "ansible.cfg"  # empty: no operator's ansible.cfg changes what the test sees
    config.write_text("[defaults]\n")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "False", "LC_ALL": "C.UTF-8",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"), "ANSIBLE_REMOTE_TMP": str(tmp_path / "ansible-remote"),
           "ANSIBLE_CONFIG": str(config), "ANSIBLE_RETRY_FILES_ENABLED": "False", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(playbook), "-i", str(inventory), str(PLAYBOOK), "-e", json.dumps(extra_vars)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_a_good_model_rolls_out_canary_first_then_the_rest(ansible_playbook, sshd, make_device, tmp_path):
    devices = [make_device(name) for name in ("canary", "second")]
    for device in devices:
        _ready(device)
    inventory = write_inventory(tmp_path / "inventory.ini", sshd, devices)
    model = padded_model(tmp_path, "fleet")
    sha = file_sha256(model)

    done = run_playbook(ansible_playbook, inventory, tmp_path, emotion_edge_model=str(model))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    for device in devices:
        assert device.store.current_target() == f"{sha}.tflite"
        wait_until(lambda d=device: d.status["model_sha256"] == sha, f"{device.root.name} to report the new model", 5)
        assert f"{device.root.name}: healthy: pid {device.proc.pid} runs {sha[:12]}" in done.stdout
        assert not list(Path("/tmp").glob(f"emotion-edge-{sha}.*"))  # the temporary copies are gone
    # serial: [1, "100%"]: the canary's batch ran alone, before the others'.
    canary_at = done.stdout.index("healthy: pid")
    assert done.stdout.count("PLAY [Roll emotion-edge out, canary first]") == 2
    assert "canary: healthy" in done.stdout[: done.stdout.index("PLAY [", canary_at)]

    again = run_playbook(ansible_playbook, inventory, tmp_path, emotion_edge_model=str(model))
    assert again.returncode == 0 and "changed=0" in again.stdout  # already current: nothing touched


def test_a_bad_model_is_rolled_back_on_the_canary_and_the_rest_are_untouched(ansible_playbook, sshd, make_device,
                                                                            tmp_path):
    devices = [make_device(name) for name in ("canary", "second")]
    for device in devices:
        _ready(device)
    inventory = write_inventory(tmp_path / "inventory.ini", sshd, devices)
    labels = json.loads(packaged_model_path().with_suffix(".json").read_text())["labels"]
    bad = padded_model(tmp_path, "relabelled", labels[::-1])  # a valid contract the daemon refuses to hot-swap

    done = run_playbook(ansible_playbook, inventory, tmp_path, emotion_edge_model=str(bad))
    assert done.returncode != 0
    assert "canary: FAILED: Wait for the daemon's health verdict (device-model health): the daemon refused the model" \
        in done.stdout
    assert f"rolled back to {SHIPPED}.tflite" in done.stdout
    canary, second = devices
    assert canary.store.current_target() == second.store.current_target() == f"{SHIPPED}.tflite"
    assert not (second.store.root / f"{file_sha256(bad)}.tflite").exists()  # never copied to the second host
    frames = canary.status["frames"]
    wait_until(lambda: canary.status["frames"] > frames, "the canary's frames after the rollback", 5)
    assert canary.status["model_sha256"] == SHIPPED and second.status["model_sha256"] == SHIPPED


def test_the_role_installs_from_a_source_archive_and_restarts_once(ansible_playbook, sshd, make_device, tmp_path):
    device = make_device("fresh", with_daemon=False)
    archive = tmp_path / "emotion-edge.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("systemd/install.sh", "systemd/emotion-edge.service", "examples/config.toml"):
            tar.add(ROOT / name, arcname=name)
    target = tmp_path / "pi-root"
    restarted = tmp_path / "restarted"
    inventory = write_inventory(tmp_path / "inventory.ini", sshd, [device])
    args = ["--root", str(target), "--no-venv", "--emotion-edge", EMOTION_EDGE]
    done = run_playbook(ansible_playbook, inventory, tmp_path, emotion_edge_source_archive=str(archive),
                        emotion_edge_source_dir=str(tmp_path / "src"), emotion_edge_install_args=args,
                        emotion_edge_restart_command=f"echo restarted >> {restarted}")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    unit = (target / "etc" / "systemd" / "system" / "emotion-edge.service").read_text()
    assert "ExecStart=/opt/emotion-edge/venv/bin/emotion-edge run --config /etc/emotion-edge/config.toml" in unit
    assert (target / "etc" / "emotion-edge" / "config.toml").is_file()
    assert os.readlink(target / "var" / "lib" / "emotion-edge" / "models" / "current") == f"{SHIPPED}.tflite"
    assert restarted.read_text() == "restarted\n"  # the handler, once
