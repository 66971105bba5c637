"""`emotion-edge deploy` end to end: a real sshd on a loopback port with throwaway keys, device roots in
temporary folders, and real daemon processes whose reload command is `kill -HUP <pid>`."""

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.model_variants import padded_model
from helpers.peers import accepts, free_port, require_binary, wait_until

from emotion_edge.device.daemon.service import read_status
from emotion_edge.device.model.metadata import file_sha256, packaged_model_path
from emotion_edge.device.model.store import ModelStore
from emotion_edge.main import main
from emotion_edge.systemd.deploy import DeployError, Remote, check_model, deploy
from emotion_edge.systemd.inventory import Host

pytestmark = pytest.mark.peer

DEMO = Path(__file__).parent.parent / "examples" / "demo.mp4"
EMOTION_EDGE = str(Path(sys.executable).with_name("emotion-edge"))
SSH_OPTIONS = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR")


@dataclass
class Sshd:
    port: int
    key: Path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    binary = require_binary("sshd", "openssh-server")
    require_binary("ssh", "openssh-client")
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    port = free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation folder, as its package makes it
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(folder / "sshd_config")], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: accepts(port) or proc.poll() is not None, "sshd", 10)
        if proc.poll() is not None:
            pytest.fail(f"sshd did not start: {proc.stderr.read().decode()}")
        yield Sshd(port, folder / "user_key")
    finally:
        proc.terminate()
        proc.wait(5)


@dataclass
class Device:
    root: Path
    config: Path
    store: ModelStore
    proc: subprocess.Popen | None = None

    @property
    def status(self) -> dict:
        return read_status(self.root / "status.json") or {}

    def host(self, sshd: Sshd, **overrides) -> Host:
        reload = f"kill -HUP {self.proc.pid}" if self.proc else ""
        settings = dict(address="127.0.0.1", user="root", port=sshd.port, identity_file=sshd.key,
                        command=EMOTION_EDGE, config=str(self.config), reload_command=reload,
                        ssh_options=SSH_OPTIONS, health_timeout_s=20.0, name=self.root.name)
        return Host(**{**settings, **overrides})

    def cli_args(self, sshd: Sshd) -> list[str]:
        host = self.host(sshd)
        args = ["--host", f"root@127.0.0.1:{sshd.port}", "--identity", str(sshd.key), "--remote-command", EMOTION_EDGE,
                "--remote-config", str(self.config), "--reload-command", host.reload_command, "--health-timeout", "20"]
        for option in SSH_OPTIONS:
            args += ["--ssh-option", option]
        return args


@pytest.fixture
def make_device(tmp_path):
    """A device root seeded with the shipped model as `current`; with_daemon starts a real daemon on it."""
    devices: list[Device] = []

    def make(name: str, with_daemon: bool = True) -> Device:
        root = tmp_path / name
        (root / "models").mkdir(parents=True)
        config = root / "config.toml"
        config.write_text(f'[camera]\nsource = "{DEMO}"\nloop = true\nfps = 15\n'
                          f'[model]\npath = "{root / "models" / "current"}"\nthreads = 1\n'
                          f'[service]\nstatus_file = "{root / "status.json"}"\nstatus_interval_s = 0.2\n')
        device = Device(root, config, ModelStore(root / "models"))
        device.store.activate(device.store.adopt(packaged_model_path()))
        if with_daemon:
            with open(root / "daemon.log", "wb") as log:  # the daemon keeps its own copy of the descriptor
                device.proc = subprocess.Popen([EMOTION_EDGE, "run", "--config", str(config)],
                                               stdout=subprocess.DEVNULL, stderr=log)
        devices.append(device)
        return device

    yield make
    for device in devices:
        if device.proc:
            device.proc.send_signal(signal.SIGCONT)
            device.proc.terminate()
            device.proc.wait(10)


def _ready(device: Device) -> None:
    wait_until(lambda: device.status.get("ready") or device.proc.poll() is not None, f"{device.root.name} daemon", 30)
    assert device.proc.poll() is None, (device.root / "daemon.log").read_text()[-2000:]


SHIPPED = file_sha256(packaged_model_path())


def test_a_good_model_becomes_current_and_the_device_reports_it(sshd, make_device, tmp_path, capsys):
    device = make_device("hall")
    _ready(device)
    model = padded_model(tmp_path, "v2")
    sha = file_sha256(model)
    assert main(["deploy", str(model), *device.cli_args(sshd)]) == 0
    assert f"root@127.0.0.1:{sshd.port}: OK (healthy: pid {device.proc.pid} runs {sha[:12]}" in capsys.readouterr().out
    assert device.store.current_target() == f"{sha}.tflite"
    status = device.status
    assert status["model_sha256"] == sha and status["last_frame_at"] > status["model_loaded_at"]
    assert status["pid"] == device.proc.pid


def test_a_model_the_daemon_refuses_is_rolled_back_with_the_reason(sshd, make_device, tmp_path, capsys):
    device = make_device("kitchen")
    _ready(device)
    labels = json.loads(packaged_model_path().with_suffix(".json").read_text())["labels"]
    model = padded_model(tmp_path, "relabelled", labels[::-1])  # a valid contract, but not hot-reloadable
    assert main(["deploy", str(model), *device.cli_args(sshd)]) == 1
    out = capsys.readouterr().out
    assert "FAILED: device-model health: the daemon refused the model" in out and "differ from the running" in out
    assert f"rolled back to {SHIPPED}.tflite" in out
    assert device.store.current_target() == f"{SHIPPED}.tflite"
    frames = device.status["frames"]
    wait_until(lambda: device.status["frames"] > frames, "frames after the rollback", 5)
    assert device.status["model_sha256"] == SHIPPED


def test_a_hung_daemon_fails_health_on_timeout_and_is_rolled_back(sshd, make_device, tmp_path):
    device = make_device("porch")
    _ready(device)
    device.proc.send_signal(signal.SIGSTOP)  # alive but not processing: the reload is never served
    try:
        model = padded_model(tmp_path, "v3")
        [result] = deploy([device.host(sshd, health_timeout_s=1.5)], check_model(model))
    finally:
        device.proc.send_signal(signal.SIGCONT)
    assert not result.ok and result.rolled_back and "not healthy after 1.5 s" in result.reason
    assert device.store.current_target() == f"{SHIPPED}.tflite"


class CutTransfer(Remote):
    """The copy's stream ends halfway, as when the connection drops."""

    def run(self, remote_command, stdin=None, timeout=60.0):
        return super().run(remote_command, stdin[: len(stdin) // 2] if stdin else stdin, timeout)


def test_an_interrupted_copy_leaves_current_untouched(sshd, make_device, tmp_path):
    device = make_device("attic", with_daemon=False)
    before = sorted(p.name for p in device.store.root.iterdir())
    model = padded_model(tmp_path, "v4")
    [result] = deploy([device.host(sshd)], check_model(model), remote=CutTransfer)
    assert not result.ok and not result.rolled_back
    assert "incomplete transfer: the model ended after" in result.reason
    assert sorted(p.name for p in device.store.root.iterdir()) == before  # no partial or temporary file left
    assert device.store.current_target() == f"{SHIPPED}.tflite"


def test_a_killed_ssh_transfer_leaves_current_untouched(sshd, make_device, tmp_path):
    device = make_device("cellar", with_daemon=False)
    before = sorted(p.name for p in device.store.root.iterdir())
    package = check_model(padded_model(tmp_path, "v5"))
    remote = Remote(device.host(sshd))
    command = remote.device_model_command("receive", package.sha256, "--model-bytes", str(len(package.model)),
                                          "--sidecar-bytes", str(len(package.sidecar)))
    ssh = subprocess.Popen(remote.ssh_argv(command), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    ssh.stdin.write(package.payload[: len(package.payload) // 3])
    ssh.stdin.flush()
    wait_until(lambda: any(p.name.startswith(".incoming-") for p in device.store.root.iterdir()), "the copy to start", 10)
    ssh.kill()
    ssh.wait()
    wait_until(lambda: sorted(p.name for p in device.store.root.iterdir()) == before, "the device to clean up", 10)
    assert device.store.current_target() == f"{SHIPPED}.tflite"


def test_two_hosts_canary_first_then_the_rest(sshd, make_device, tmp_path, capsys):
    canary, second = make_device("canary"), make_device("second")
    _ready(canary)
    _ready(second)
    model = padded_model(tmp_path, "fleet")
    sha = file_sha256(model)
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(
        f'[defaults]\nuser = "root"\nport = {sshd.port}\nidentity_file = "{sshd.key}"\ncommand = "{EMOTION_EDGE}"\n'
        f'ssh_options = {json.dumps(list(SSH_OPTIONS))}\nhealth_timeout_s = 20.0\n'
        + "".join(f'[[hosts]]\naddress = "127.0.0.1"\nname = "{d.root.name}"\nconfig = "{d.config}"\n'
                  f'reload_command = "{d.host(sshd).reload_command}"\n' for d in (canary, second)))

    assert main(["deploy", str(model), "--inventory", str(inventory), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert f"canary [canary]: current {SHIPPED}.tflite -> {sha}" in plan and "nothing was copied" in plan
    assert not (canary.store.root / f"{sha}.tflite").exists()

    assert main(["deploy", str(model), "--inventory", str(inventory)]) == 0
    out = capsys.readouterr().out
    assert "canary: OK" in out and "second: OK" in out
    for device in (canary, second):
        assert device.store.current_target() == f"{sha}.tflite"
        wait_until(lambda: device.status["model_sha256"] == sha, "the new model reported", 5)  # noqa: B023 - called at once

    # A model the canary refuses stops the rollout before the second host is touched.
    labels = json.loads(packaged_model_path().with_suffix(".json").read_text())["labels"]
    bad = padded_model(tmp_path, "bad", labels[::-1])
    assert main(["deploy", str(bad), "--inventory", str(inventory)]) == 1
    out = capsys.readouterr().out
    assert "canary: FAILED" in out and "second: SKIPPED: canary canary failed" in out
    assert canary.store.current_target() == second.store.current_target() == f"{sha}.tflite"
    assert not (second.store.root / f"{file_sha256(bad)}.tflite").exists()


def test_a_host_that_cannot_be_reached_fails_with_the_reason(sshd, tmp_path):
    unused = free_port()
    host = Host(address="127.0.0.1", user="root", port=unused, identity_file=sshd.key, ssh_options=SSH_OPTIONS)
    with pytest.raises(DeployError, match="no answer from the device"):
        Remote(host).device_model("status")
