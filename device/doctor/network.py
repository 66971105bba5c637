"""Doctor's checks of what the daemon talks to: the MQTT login, TLS files, broker and spool, the display, the HTTP bind."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import socket
import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emotion_edge.device.config import DaemonConfig

from emotion_edge.device.doctor.base import (
    MIN_SPOOL_FREE_BYTES,
    SERVICE,
    CheckResult,
    HostPaths,
    fail,
    ok,
    warn,
)
from emotion_edge.device.doctor.setup import group_result

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
        return group_result(name, "i2c", "may use the I2C bus") or fail(
            name, f"{node}: this user cannot open it", "add the user to the 'i2c' group")
    return group_result(name, "i2c", "may use the I2C bus") or ok(
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


