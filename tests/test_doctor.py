"""`emotion-edge doctor` against the real parts available here: a real mosquitto (with a password, and a wrong
one), a closed port, the demo video as the camera, device nodes that do not exist, a bad model file, a spool
folder on a full filesystem and one that cannot exist, a port someone holds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.mosquitto import Mosquitto
from helpers.peers import free_port, require_binary, require_module, wait_until

from emotion_edge.device.config import DaemonConfig, load_config
from emotion_edge.device.doctor import (
    HostPaths,
    Level,
    check_broker,
    check_daemon,
    check_spool,
    check_temperature,
    decode_throttled,
    doctor,
)
from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.main import main

DEMO = Path(__file__).parent.parent / "examples" / "demo.mp4"
EMOTION_EDGE = str(Path(sys.executable).with_name("emotion-edge"))
NO_DEVICES = "/dev/video97"  # a V4L2 node no machine running the tests has


def write_config(tmp_path: Path, extra: str = "", source: str = str(DEMO), model: Path | None = None) -> Path:
    """A config that `run` would accept on this machine: the demo video as the camera, the shipped model."""
    path = tmp_path / "config.toml"
    path.write_text(f'[camera]\nsource = "{source}"\n[model]\npath = "{model or packaged_model_path()}"\nthreads = 1\n'
                    + extra)
    return path


def mqtt_section(port: int, tmp_path: Path, user: str = "", password: str | None = None) -> str:
    text = f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nspool_path = "{tmp_path / "spool" / "spool.db"}"\n'
    if user:
        (tmp_path / "mqtt-password").write_text(f"{password}\n")
        text += f'username = "{user}"\npassword_file = "{tmp_path / "mqtt-password"}"\n'
    return text


def by_name(results) -> dict:
    return {r.name: r for r in results}


@pytest.fixture
def mosquitto_binary():
    require_module("cryptography")
    return require_binary("mosquitto", "mosquitto")


@pytest.mark.peer
def test_a_working_setup_is_all_ok_and_exits_0(mosquitto_binary, tmp_path, capsys):
    with Mosquitto(mosquitto_binary, tmp_path / "broker", free_port(), users={"sensor": "right-password"}) as broker:
        config = write_config(tmp_path, mqtt_section(broker.port, tmp_path, "sensor", "right-password"))
        code = main(["doctor", "--config", str(config)])
        out = capsys.readouterr().out
        # Its own client id, not the daemon's (which has the machine's default device id).
        from emotion_edge.device.config import default_device_id
        assert f"emotion-edge-{default_device_id()}-doctor" in broker.log_text()
    assert code == 0, out
    assert f"OK    camera      source '{DEMO}': " in out
    assert "OK    broker      mqtt://127.0.0.1:" in out and "MQTT CONNECT accepted as 'sensor'" in out
    assert "OK    model       " in out and "OK    detector    blazeface-short: " in out
    assert "OK    secrets     readable: mqtt password" in out
    assert "OK    spool       " in out and "will be created" in out
    assert out.rstrip().splitlines()[-1].startswith("doctor: ") and "0 FAIL" in out


@pytest.mark.peer
def test_a_wrong_password_fails_the_broker_check_with_what_to_do(mosquitto_binary, tmp_path, capsys):
    with Mosquitto(mosquitto_binary, tmp_path / "broker", free_port(), users={"sensor": "right-password"}) as broker:
        config = write_config(tmp_path, mqtt_section(broker.port, tmp_path, "sensor", "wrong-password"))
        code = main(["doctor", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 1
    broker_line = next(line for line in out.splitlines() if line.startswith("FAIL  broker"))
    assert "refused the connection" in broker_line and "user 'sensor'" in broker_line
    assert "wrong-password" not in out  # never the secret itself
    assert "fix: compare with the broker's users (mosquitto_passwd on the broker)" in out


def test_an_unreachable_broker_fails(tmp_path):
    config = load_config(write_config(tmp_path, mqtt_section(free_port(), tmp_path)))
    result = check_broker(config, HostPaths(timeout_s=2.0))
    assert result.level is Level.FAIL
    assert "cannot reach the broker: 127.0.0.1:" in result.detail and "refused" in result.detail.lower()
    assert "systemctl start mosquitto" in result.fix


def test_missing_devices_bad_model_and_missing_tls_files_each_fail(tmp_path, capsys):
    bad_model = tmp_path / "broken.tflite"
    bad_model.write_bytes(b"this is not a flatbuffer")
    extra = (mqtt_section(free_port(), tmp_path) + f'[mqtt.tls]\nenabled = true\nca_file = "{tmp_path / "absent-ca.pem"}"\n'
             "[display.oled]\nenabled = true\ni2c_port = 97\n")
    config = write_config(tmp_path, extra, source=NO_DEVICES, model=bad_model)
    assert main(["doctor", "--config", str(config), "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  camera      source '{NO_DEVICES}': /dev/video97 does not exist" in out
    assert f"FAIL  model       {bad_model}" in out
    assert "FAIL  display     [display.oled] is on but /dev/i2c-97 does not exist: I2C is off" in out
    assert "fix: sudo raspi-config nonint do_i2c 0" in out
    assert f"FAIL  secrets     mqtt.tls.ca_file: {tmp_path / 'absent-ca.pem'} does not exist" in out


def test_json_output_lists_every_check(tmp_path, capsys):
    config = write_config(tmp_path)
    main(["doctor", "--config", str(config), "--json"])
    checks = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in checks] == ["config", "camera", "model", "detector", "secrets", "broker", "spool",
                                           "display", "http", "service", "daemon", "detection", "clock", "cpu temp",
                                           "throttling"]
    assert {c["level"] for c in checks} <= {"OK", "WARN", "FAIL"}


def test_a_config_that_does_not_load_is_the_only_failure(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text("[camera]\nsorce = 'picamera2'\n")
    assert main(["doctor", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  config") and "sorce" in out and "doctor: 0 OK, 0 WARN, 1 FAIL" in out


def test_http_beyond_loopback_needs_a_token_and_a_held_port_warns(tmp_path, capsys):
    config = write_config(tmp_path, f'[http]\nenabled = true\nbind = "0.0.0.0"\nport = {free_port()}\ntoken_env = "EE_DOCTOR_NO_SUCH_VAR"\n')
    main(["doctor", "--config", str(config)])
    assert "FAIL  http        http.bind = '0.0.0.0' serves beyond this machine, which needs a token" in capsys.readouterr().out
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = write_config(tmp_path, f'[http]\nenabled = true\nbind = "127.0.0.1"\nport = {port}\n')
        [http] = [r for r in doctor(config) if r.name == "http"]
    assert http.level is Level.WARN and f"127.0.0.1:{port} is in use" in http.detail


def test_a_spool_folder_that_cannot_exist_fails(tmp_path):
    (tmp_path / "a-file").write_text("")
    config = load_config(write_config(tmp_path, mqtt_section(1883, tmp_path).replace(
        str(tmp_path / "spool" / "spool.db"), str(tmp_path / "a-file" / "spool" / "spool.db"))))
    result = check_spool(config)
    assert result.level is Level.FAIL and f"{tmp_path / 'a-file'} is a file" in result.detail


def test_a_spool_larger_than_the_free_space_warns(tmp_path):
    config = load_config(write_config(tmp_path, mqtt_section(1883, tmp_path) + f"spool_max_bytes = {2**62}\n"))
    result = check_spool(config)
    assert result.level is Level.WARN and "less than spool_max_bytes" in result.detail


@pytest.fixture
def full_filesystem(tmp_path):
    """A real 256 KiB tmpfs, filled up (needs root to mount, as CI runs)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_spool_on_a_full_filesystem_fails(tmp_path, full_filesystem):
    section = mqtt_section(1883, tmp_path).replace(str(tmp_path / "spool" / "spool.db"), str(full_filesystem / "spool.db"))
    result = check_spool(load_config(write_config(tmp_path, section)))
    assert result.level is Level.FAIL and "0.0 MiB free" in result.detail and "journalctl --vacuum-size" in result.fix


def test_cpu_temperature_and_throttling_flags(tmp_path):
    zone = tmp_path / "thermal_zone0"
    zone.mkdir()
    (zone / "type").write_text("cpu-thermal\n")
    for millicelsius, level in (("48312", Level.OK), ("73000", Level.WARN), ("84100", Level.FAIL)):
        (zone / "temp").write_text(millicelsius + "\n")
        assert check_temperature(HostPaths(thermal=tmp_path)).level is level
    assert check_temperature(HostPaths(thermal=tmp_path / "absent")).level is Level.OK
    assert decode_throttled(0x0) == ([], [])
    assert decode_throttled(0x50005) == (["under-voltage", "throttled"], ["under-voltage", "throttled"])
    assert decode_throttled(0x80000) == ([], ["soft temperature limit"])


def test_the_running_daemons_status_file_is_reported(tmp_path):
    """A real daemon on the demo video writes its status file; doctor reads it, then sees the daemon gone."""
    config_path = write_config(tmp_path, f'[service]\nstatus_file = "{tmp_path / "status.json"}"\nstatus_interval_s = 0.2\n')
    config_path.write_text(config_path.read_text().replace("[camera]\n", "[camera]\nloop = true\nfps = 15\n"))
    config = load_config(config_path)
    assert check_daemon(config).detail.startswith("no status file")
    daemon = subprocess.Popen([EMOTION_EDGE, "run", "--config", str(config_path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        result = wait_until(lambda: (r := check_daemon(config)).detail.startswith("pid") and r, "its first frames", 60,
                            describe=lambda: check_daemon(config).detail)
        assert result.level is Level.OK, result
        assert f"pid {daemon.pid} runs model " in result.detail and " frames, last " in result.detail
    finally:
        daemon.terminate()
        daemon.wait(10)
    gone = check_daemon(config)
    assert gone.level is Level.WARN and f"pid {daemon.pid}, which is not running" in gone.detail


def test_detection_switched_off_warns_and_says_how_to_switch_it_on(tmp_path, capsys):
    state = tmp_path / "state"
    state.mkdir()
    config = write_config(tmp_path, f'[service]\nstate_dir = "{state}"\n')
    main(["doctor", "--config", str(config)])
    assert "OK    detection   on: the daemon looks for faces" in capsys.readouterr().out
    (state / "detection.json").write_text('{"enabled": false}\n')
    main(["doctor", "--config", str(config)])
    out = capsys.readouterr().out
    assert "WARN  detection   switched off (privacy mode" in out
    assert f"mosquitto_pub -t emotion-edge/{DaemonConfig().device_id}/detection/set -m ON" in out
