"""`emotion-edge doctor`: check everything the daemon needs, one line per check, with what to do about each problem.

A Pi owner runs it when something does not work. It reads the same config file as `run` and checks, in the
order a problem usually shows up: the config itself, the camera (picamera2 or a V4L2 device, the `video`
group), the emotion model and its contract, the face detector's files, the MQTT password and TLS files, the
broker (a TCP connect, then an MQTT CONNECT with the configured login), the spool's free space, the I2C
display, the HTTP bind and token, the service under systemd, the running daemon's status file, the clock, and
the CPU's temperature and throttling flags where the Pi reports them.

Every check returns a `CheckResult`: OK, WARN (works, but look at it) or FAIL (the daemon will not work as
configured); a WARN or FAIL says what to do. The exit status is 1 when any check FAILs. Nothing here changes
the system: the broker sees one short-lived client named `<client_id>-doctor` (not the daemon's id, which
would disconnect the running daemon), and the HTTP port is only bound for an instant.
"""

from __future__ import annotations

import argparse
import enum
import errno
import grp
import importlib.util
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from emotion_edge.device.errors import UsageError

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


# --- config ------------------------------------------------------------------------------------------------


def resolve_config(config_path: Path | None, model: Path | None) -> tuple[DoctorInput | None, CheckResult]:
    """The config `run` would use: --config, else /etc/emotion-edge/config.toml if present, else the defaults."""
    from emotion_edge.device.config import DaemonConfig, load_config
    from emotion_edge.device.model.metadata import packaged_model_path

    path = config_path if config_path is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if path is None:
        config = DaemonConfig()
        result = warn("config", f"no --config and no {DEFAULT_CONFIG}: checking the built-in defaults",
                      "pass the service's config with --config, or install it: sudo emotion-edge install")
        return DoctorInput(config, None, model or packaged_model_path()), result
    try:
        config = load_config(path)
    except (ValueError, OSError) as exc:
        return None, fail("config", str(exc), "fix the file (every key is documented in examples/config.toml)")
    return DoctorInput(config, path, model or config.model.path), ok("config", str(path))


# --- camera ------------------------------------------------------------------------------------------------


def _video_nodes(host: HostPaths) -> list[Path]:
    return sorted(host.dev.glob("video*"))


def _in_group(group: str) -> bool | None:
    """Whether this process's user is in `group` (None when the group does not exist here); root always is."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return None
    if os.geteuid() == 0 or gid in os.getgroups() or gid == os.getegid():
        return True
    user = pwd.getpwuid(os.geteuid()).pw_name
    return user in grp.getgrgid(gid).gr_mem


def _group_result(name: str, group: str, what: str) -> CheckResult | None:
    """A WARN when this user is not in `group`; None when it is (or the group does not exist)."""
    member = _in_group(group)
    if member is False:
        user = pwd.getpwuid(os.geteuid()).pw_name
        return warn(name, f"user {user} is not in the '{group}' group, which {what}",
                    f"sudo usermod -aG {group} {user}, then log out and in (the service user gets it from install)")
    return None


def check_camera(config: DaemonConfig, host: HostPaths) -> CheckResult:
    source = config.camera.source.strip()
    if source.lower() in ("picamera2", "picamera", "pi"):
        return _check_picamera(host)
    if source.isdigit() or source.startswith("/dev/video"):
        return _check_v4l2(source, host)
    return _check_file_source(source, config, host)


def _check_picamera(host: HostPaths) -> CheckResult:
    name = "camera"
    if importlib.util.find_spec("picamera2") is None:
        return fail(name, "source 'picamera2', but the picamera2 module cannot be imported",
                    "sudo apt install python3-picamera2, and make the venv with --system-site-packages "
                    "(python3 -m venv --system-site-packages VENV) so it sees Raspberry Pi OS's picamera2")
    nodes = _video_nodes(host)
    if not nodes:
        return fail(name, f"picamera2 is installed but there is no camera device ({host.dev}/video*)",
                    "check the ribbon cable and its orientation, then `rpicam-hello --list-cameras`")
    unreadable = [str(n) for n in nodes if not os.access(n, os.R_OK | os.W_OK)]
    if unreadable:
        return _group_result(name, "video", "may open the camera") or fail(
            name, f"cannot open {', '.join(unreadable)}", "add the user to the 'video' group")
    return _group_result(name, "video", "may open the camera") or ok(name, f"picamera2, {len(nodes)} video node(s)")


def _check_v4l2(source: str, host: HostPaths) -> CheckResult:
    name = "camera"
    node = host.dev / f"video{source}" if source.isdigit() else host.dev / Path(source).name
    if not node.exists():
        found = ", ".join(str(n) for n in _video_nodes(host)) or "none"
        return fail(name, f"source {source!r}: {node} does not exist (video devices here: {found})",
                    "plug the webcam in (`v4l2-ctl --list-devices` lists them) or set [camera] source to one that exists")
    if not os.access(node, os.R_OK | os.W_OK):
        return _group_result(name, "video", "may open cameras") or fail(
            name, f"{node} exists but this user cannot open it", "add the user to the 'video' group")
    return _group_result(name, "video", "may open cameras") or ok(name, f"V4L2 device {node}")


def _check_file_source(source: str, config: DaemonConfig, host: HostPaths) -> CheckResult:
    """A video file, image, folder or stream: open it as `run` would and read one frame."""
    from emotion_edge.device.sources import SourceError, SourceOptions, open_source, redact_uri

    name = "camera"
    shown = redact_uri(source)
    try:
        frame_source = open_source(source, SourceOptions(loop=False))
        with frame_source:
            frame = frame_source.read(timeout=host.timeout_s)
    except (ValueError, SourceError, OSError) as exc:
        return fail(name, f"source {shown!r}: {exc}", "set [camera] source to 'picamera2', a webcam, a video file, "
                                                      "an image folder or a stream URL that works")
    if frame is None:
        return fail(name, f"source {shown!r} opened but gave no frame within {host.timeout_s:g} s",
                    "check the file or stream plays (e.g. with ffplay)")
    height, width = frame.image.shape[:2]
    return ok(name, f"source {shown!r}: {width}x{height} frames")


# --- model and detector ------------------------------------------------------------------------------------


def check_model(model_path: Path, threads: int) -> CheckResult:
    from emotion_edge.device.model.classifier import EmotionClassifier

    name = "model"
    try:
        classifier = EmotionClassifier(model_path, threads=threads)
    except (ValueError, OSError) as exc:
        return fail(name, str(exc), "put a model there: `emotion-edge device-model --config CONFIG adopt --activate` "
                                    "seeds the shipped one, `emotion-edge deploy` a new one")
    accuracy = classifier.metadata.metrics.get("int8_accuracy", {}).get("test")
    size = classifier.contract.input_size
    shown = f"{model_path}" + (f" -> {os.readlink(model_path)}" if model_path.is_symlink() else "")
    return ok(name, f"{shown}: {len(classifier.labels)} classes, {size}x{size} input, sha256 {classifier.sha256[:12]}"
              + (f", PrivateTest {accuracy:.2%}" if isinstance(accuracy, (int, float)) else ""))


def check_detector(config: DaemonConfig) -> CheckResult:
    from emotion_edge.device.detection import DetectorError, make_detector

    name = "detector"
    try:
        detector = make_detector(config.detector)
    except (DetectorError, ValueError, OSError) as exc:
        return fail(name, str(exc), "reinstall emotion-edge (its package ships the detector files), or fix "
                                    "[detector] model_path")
    return ok(name, f"{config.detector.kind}: {getattr(detector, 'path', '')}")


# --- MQTT --------------------------------------------------------------------------------------------------


def _readable(path: Path) -> str | None:
    """None when `path` is a readable file, else why not."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is not a file"
    if not os.access(path, os.R_OK):
        return f"{path} is not readable by user {pwd.getpwuid(os.geteuid()).pw_name}"
    return None


def check_credentials(config: DaemonConfig) -> CheckResult:
    """The MQTT password and TLS files the daemon reads, and the HTTP token file."""
    from emotion_edge.device.mqtt.config import read_password

    name = "secrets"
    mqtt = config.mqtt
    files = [("mqtt.tls.ca_file", mqtt.tls.ca_file), ("mqtt.tls.certfile", mqtt.tls.certfile),
             ("mqtt.tls.keyfile", mqtt.tls.keyfile)] if mqtt.enabled and mqtt.tls.enabled else []
    files += [("http.token_file", config.http.token_file)] if config.http.enabled else []
    for key, path in files:
        problem = path is not None and _readable(path)
        if problem:
            return fail(name, f"{key}: {problem}", f"create it, or make it readable by the service user "
                                                   f"(chgrp {SERVICE} FILE; chmod 0640 FILE)")
    if mqtt.enabled:
        try:
            read_password(mqtt)
        except ValueError as exc:
            return fail(name, str(exc), "see README 'MQTT': the password lives in a file or the environment")
    used = [key for key, path in files if path is not None]
    used += ["mqtt password"] if mqtt.enabled and (mqtt.password_file or mqtt.password_env) else []
    return ok(name, f"readable: {', '.join(used)}" if used else "no password, TLS or token files configured")


def _tcp_connect(host: str, port: int, timeout: float) -> str | None:
    """None when something accepts a TCP connection at host:port, else why not."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return None
    except socket.gaierror as exc:
        return f"cannot resolve {host!r} ({exc.strerror})"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def _mqtt_connect(config: DaemonConfig, timeout: float) -> tuple[bool, str]:
    """(accepted, what happened) for one MQTT CONNECT with the configured login and TLS."""
    import paho.mqtt.client as paho

    from emotion_edge.device.mqtt.config import client_id_for
    from emotion_edge.device.mqtt.connection import BrokerConnection, describe_refusal, make_client

    connection = BrokerConnection.from_config(config.mqtt)
    client = make_client(connection, client_id_for(config.mqtt, config.device_id) + "-doctor")
    answered = threading.Event()
    outcome: dict[str, paho.ReasonCode] = {}

    def on_connect(_client: paho.Client, _userdata: object, _flags: object, reason: paho.ReasonCode,
                   _properties: object) -> None:
        outcome["reason"] = reason
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(connection.host, connection.port, keepalive=max(5, int(timeout) + 5))
        client.loop_start()
        answered.wait(timeout)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return False, f"{connection.address}: {exc}"
    finally:
        client.disconnect()
        client.loop_stop()
    reason = outcome.get("reason")
    if reason is None:
        return False, f"{connection.address} accepted TCP but sent no MQTT CONNACK within {timeout:g} s"
    if reason.is_failure:
        return False, describe_refusal(reason, connection).removesuffix("; retrying with backoff")
    user = f" as {connection.username!r}" if connection.username else " (anonymous)"
    return True, f"{connection.address}: MQTT CONNECT accepted{user}"


def check_broker(config: DaemonConfig, host: HostPaths) -> CheckResult:
    name = "broker"
    mqtt = config.mqtt
    if not mqtt.enabled:
        return ok(name, "MQTT is off ([mqtt] enabled = false): events are not published")
    unreachable = _tcp_connect(mqtt.host, mqtt.port, host.timeout_s)
    if unreachable:
        return fail(name, f"cannot reach the broker: {unreachable}",
                    "start it (sudo systemctl start mosquitto), check [mqtt] host and port, and any firewall")
    try:
        accepted, what = _mqtt_connect(config, host.timeout_s)
    except ValueError as exc:  # a password or TLS file problem: the secrets check names it
        return fail(name, f"cannot try the login: {exc}", "fix the 'secrets' check first")
    if not accepted:
        return fail(name, what, "compare with the broker's users (mosquitto_passwd on the broker), and set "
                                "[mqtt.tls] if the broker wants TLS")
    return ok(name, what)


def check_spool(config: DaemonConfig) -> CheckResult:
    """Free space where the spool keeps events while the broker is away."""
    name = "spool"
    mqtt = config.mqtt
    if not mqtt.enabled:
        return ok(name, "MQTT is off: no spool")
    folder = mqtt.spool_path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    user = pwd.getpwuid(os.geteuid()).pw_name
    if not existing.is_dir():
        return fail(name, f"{existing} is a file, so the spool folder {folder} cannot exist",
                    f"set [mqtt] spool_path to a file in a folder, e.g. /var/lib/{SERVICE}/spool.db")
    if not os.access(existing, os.W_OK):
        what = f"{folder} is" if existing == folder else f"{folder} does not exist and {existing} is"
        return fail(name, f"{what} not writable by user {user}, so the daemon cannot keep its spool there",
                    f"sudo install -d -o {SERVICE} -g {SERVICE} {folder} (install.sh makes /var/lib/{SERVICE})")
    free = shutil.disk_usage(existing).free
    where = f"{existing} has {free / 2**20:.1f} MiB free"
    if free < MIN_SPOOL_FREE_BYTES:
        return fail(name, f"{where}: the spool cannot hold events while the broker is away",
                    "free disk space (sudo apt clean; sudo journalctl --vacuum-size=50M) or move [mqtt] spool_path")
    if free < mqtt.spool_max_bytes:
        return warn(name, f"{where}, less than spool_max_bytes ({mqtt.spool_max_bytes / 2**20:.1f} MiB)",
                    "free disk space or lower [mqtt] spool_max_bytes")
    created = "" if existing == folder else f" ({folder} will be created)"
    return ok(name, f"{where} for {mqtt.spool_path.name}, at most {mqtt.spool_max_bytes / 2**20:.1f} MiB{created}")


# --- display and HTTP --------------------------------------------------------------------------------------


def check_display(config: DaemonConfig, host: HostPaths) -> CheckResult:
    name = "display"
    oled = config.display.oled
    if not oled.enabled:
        return ok(name, "no OLED configured ([display.oled] enabled = false)")
    node = host.dev / f"i2c-{oled.i2c_port}"
    if not node.exists():
        return fail(name, f"[display.oled] is on but {node} does not exist: I2C is off",
                    "sudo raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on in /boot/firmware/config.txt), "
                    "reboot; check i2c_port")
    if not os.access(node, os.R_OK | os.W_OK):
        return _group_result(name, "i2c", "may use the I2C bus") or fail(
            name, f"{node}: this user cannot open it", "add the user to the 'i2c' group")
    return _group_result(name, "i2c", "may use the I2C bus") or ok(
        name, f"{oled.driver} on {node} at {oled.i2c_address:#04x}")


def _bind_problem(address: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in address.strip("[]") else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((address.strip("[]"), port))
        return None
    except OSError as exc:
        return exc


def check_http(config: DaemonConfig) -> CheckResult:
    from emotion_edge.device.web.config import is_loopback, resolve_token

    name = "http"
    http = config.http
    if not http.enabled:
        return ok(name, "the HTTP API is off ([http] enabled = false)")
    try:
        token = resolve_token(http)
    except ValueError as exc:
        return fail(name, str(exc), "set a token, or bind to 127.0.0.1")
    problem = _bind_problem(http.bind, http.port)
    where = f"{http.bind}:{http.port}"
    if problem is not None and problem.errno == errno.EADDRINUSE:
        return warn(name, f"{where} is in use", "fine if the running emotion-edge service holds it "
                                                "(systemctl status emotion-edge); else change [http] port")
    if problem is not None:
        return fail(name, f"cannot listen on {where}: {problem.strerror or problem}",
                    "set [http] bind to an address of this machine (or 0.0.0.0) and a port above 1023")
    scope = "loopback only" if is_loopback(http.bind) else "reachable from the network"
    return ok(name, f"{where} is free ({scope}, {'token set' if token else 'no token'})")


# --- the system ----------------------------------------------------------------------------------------------


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_service(host: HostPaths) -> CheckResult:
    name = "service"
    systemctl = host.which("systemctl")
    if systemctl is None:
        return ok(name, "no systemctl here: the service check does not apply")
    done = _run([systemctl, "is-active", f"{SERVICE}.service"], host.timeout_s)
    if done is None:
        return warn(name, "systemctl did not answer", "sudo systemctl status emotion-edge")
    state = done.stdout.strip()
    if not state:  # systemctl prints nothing when PID 1 is not systemd (a container, a chroot)
        return ok(name, "systemd is not PID 1 here (a container or chroot?): the service check does not apply")
    if state == "active":
        return ok(name, f"{SERVICE}.service is active")
    if state == "failed":
        return fail(name, f"{SERVICE}.service has failed", f"journalctl -u {SERVICE} -b -n 50 says why; "
                                                            f"then sudo systemctl restart {SERVICE}")
    if state in ("activating", "reloading", "deactivating"):
        return warn(name, f"{SERVICE}.service is {state}", f"wait, then systemctl status {SERVICE}")
    return warn(name, f"{SERVICE}.service is {state}", f"sudo emotion-edge install (or sudo systemctl enable --now {SERVICE})")


def check_daemon(config: DaemonConfig, now: float | None = None) -> CheckResult:
    """What the running daemon last reported in its status file ([service] status_file)."""
    from emotion_edge.device.daemon.service import read_status
    from emotion_edge.device.model.health import pid_alive

    name = "daemon"
    path = config.service.status_file
    status = read_status(path)
    if status is None:
        return ok(name, f"no status file {path}: no daemon with this config is running on this machine")
    moment = time.time() if now is None else now
    pid = int(status.get("pid", 0))
    if not pid or not pid_alive(pid):
        return warn(name, f"{path} was written by pid {pid}, which is not running: the daemon stopped",
                    f"journalctl -u {SERVICE} -b says why; sudo systemctl restart {SERVICE}")
    error = status.get("reload_error") or {}
    if error:
        return warn(name, f"pid {pid} refused its last model reload: {error.get('reason')}",
                    "it keeps running the previous model; deploy one with the same labels, or restart the service")
    last = status.get("last_frame_at")
    if last is None or moment - float(last) > max(10.0, 10 * config.service.status_interval_s):
        age = "no frame yet" if last is None else f"last frame {moment - float(last):.0f} s ago"
        return warn(name, f"pid {pid} is running but not processing frames ({age})",
                    "check the 'camera' line; the daemon reopens a stalled camera by itself, with backoff")
    return ok(name, f"pid {pid} runs model {str(status.get('model_sha256', ''))[:12]}, {status.get('frames')} frames, "
                    f"last {moment - float(last):.1f} s ago")


def check_clock(host: HostPaths, now: float | None = None) -> CheckResult:
    name = "clock"
    moment = time.time() if now is None else now
    year = time.gmtime(moment).tm_year
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))
    if year < MIN_SANE_YEAR:
        return fail(name, f"the clock says {stamp}: it was never set (a Pi has no battery-backed clock)",
                    "connect the network and enable NTP: sudo timedatectl set-ntp true")
    timedatectl = host.which("timedatectl")
    done = _run([timedatectl, "show", "-p", "NTPSynchronized", "--value"], host.timeout_s) if timedatectl else None
    synced = done.stdout.strip() if done is not None and done.returncode == 0 else ""
    if synced == "no":
        return warn(name, f"{stamp}, not synchronized with NTP", "sudo timedatectl set-ntp true; check the network")
    return ok(name, stamp + (", NTP synchronized" if synced == "yes" else ""))


def _cpu_temperature(host: HostPaths) -> float | None:
    zones = sorted(host.thermal.glob("thermal_zone*"))
    preferred = [z for z in zones if (z / "type").exists() and "cpu" in (z / "type").read_text().lower()]
    for zone in preferred or zones:
        try:
            return int((zone / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return None


def check_temperature(host: HostPaths) -> CheckResult:
    name = "cpu temp"
    celsius = _cpu_temperature(host)
    if celsius is None:
        return ok(name, f"not reported here (no {host.thermal}/thermal_zone*/temp)")
    if celsius >= TEMP_FAIL_C:
        return fail(name, f"{celsius:.1f} C: the CPU is throttling", POWER_FIX)
    if celsius >= TEMP_WARN_C:
        return warn(name, f"{celsius:.1f} C: close to the 80 C throttling point", POWER_FIX)
    return ok(name, f"{celsius:.1f} C")


def decode_throttled(value: int) -> tuple[list[str], list[str]]:
    """(problems now, problems since boot) from `vcgencmd get_throttled`'s bit field."""
    now = [text for bit, text in THROTTLE_BITS.items() if value & (1 << bit)]
    past = [text for bit, text in THROTTLE_BITS.items() if value & (1 << (bit + 16))]
    return now, past


def check_throttling(host: HostPaths) -> CheckResult:
    name = "throttling"
    vcgencmd = host.which("vcgencmd")
    if vcgencmd is None:
        return ok(name, "not reported here (no vcgencmd: not a Raspberry Pi)")
    done = _run([vcgencmd, "get_throttled"], host.timeout_s)
    text = done.stdout.strip() if done is not None else ""
    try:
        value = int(text.partition("=")[2], 16)
    except ValueError:
        return warn(name, f"vcgencmd get_throttled said {text or 'nothing'!r}",
                    "add the user to the 'video' group, which may use vcgencmd")
    now, past = decode_throttled(value)
    if now:
        return fail(name, f"{text}: now {', '.join(now)}", POWER_FIX)
    if past:
        return warn(name, f"{text}: since boot {', '.join(past)}", POWER_FIX)
    return ok(name, f"{text}: no under-voltage or throttling since boot")


# --- all of it ----------------------------------------------------------------------------------------------


def run_checks(source: DoctorInput, host: HostPaths) -> list[CheckResult]:
    config = source.config
    checks: list[Callable[[], CheckResult]] = [
        lambda: check_camera(config, host),
        lambda: check_model(source.model_path, config.model.threads),
        lambda: check_detector(config),
        lambda: check_credentials(config),
        lambda: check_broker(config, host),
        lambda: check_spool(config),
        lambda: check_display(config, host),
        lambda: check_http(config),
        lambda: check_service(host),
        lambda: check_daemon(config),
        lambda: check_clock(host),
        lambda: check_temperature(host),
        lambda: check_throttling(host),
    ]
    return [check() for check in checks]


def doctor(config_path: Path | None, model: Path | None = None, host: HostPaths = HostPaths()) -> list[CheckResult]:
    """Every check, the config's first; with a config that does not load, only that one."""
    source, config_result = resolve_config(config_path, model)
    return [config_result] + (run_checks(source, host) if source is not None else [])


def summary(results: list[CheckResult]) -> str:
    counts = {level: sum(r.level is level for r in results) for level in Level}
    worst = max((r.level for r in results), default=Level.OK)
    verdict = {Level.OK: "all good", Level.WARN: "works, see the warnings", Level.FAIL: "fix the failures above"}[worst]
    return f"doctor: {counts[Level.OK]} OK, {counts[Level.WARN]} WARN, {counts[Level.FAIL]} FAIL: {verdict}"


def add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the camera, model, broker, display, service, clock and CPU (on the Pi)",
                       description="Check everything the daemon needs with the config `run` reads, one line per "
                                   "check: OK, WARN or FAIL with what to do. Changes nothing. Exit status 1 if any "
                                   "check FAILs.")
    p.add_argument("--config", type=Path,
                   help=f"daemon TOML config, as for `run` (default: {DEFAULT_CONFIG} if present, else built-in defaults)")
    p.add_argument("--model", type=Path, help="override [model] path, as for `run`")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds each network or device check may take")
    p.add_argument("--json", action="store_true", help="print the checks as a JSON list instead of lines")
    p.set_defaults(handler=_run_doctor)


def _run_doctor(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    results = doctor(args.config, args.model, replace(HostPaths(), timeout_s=args.timeout))
    if args.json:
        print(json.dumps([{**asdict(r), "level": r.level.name} for r in results], indent=2))
    else:
        for result in results:
            print("\n".join(result.lines()))
        print(summary(results))
    sys.stdout.flush()
    return 1 if any(r.level is Level.FAIL for r in results) else 0
