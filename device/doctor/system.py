"""Doctor's checks of the machine: the service under systemd, the daemon's status file, the detection switch, the
clock, CPU temperature and throttling."""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emotion_edge.device.config import DaemonConfig

from emotion_edge.device.doctor.base import (
    MIN_SANE_YEAR,
    POWER_FIX,
    SERVICE,
    TEMP_FAIL_C,
    TEMP_WARN_C,
    THROTTLE_BITS,
    CheckResult,
    HostPaths,
    fail,
    ok,
    warn,
)
from emotion_edge.device.host import cpu_temperature_c

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


def check_temperature(host: HostPaths) -> CheckResult:
    name = "cpu temp"
    celsius = cpu_temperature_c(host.thermal)  # the reader the daemon's stats use
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




def check_detection(config: DaemonConfig) -> CheckResult:
    """The detection switch as the daemon will find it: off (privacy mode) looks like a broken camera to whoever
    forgot it was switched off."""
    from emotion_edge.device.daemon import control
    from emotion_edge.device.mqtt.config import Topics
    from emotion_edge.device.statefile import StateFile

    name = "detection"
    state_dir = config.service.state_dir
    if StateFile(state_dir / control.FILE_NAME).load().get("enabled", True) is not False:
        if not state_dir.is_dir():
            return warn(name, f"on; [service] state_dir {state_dir} does not exist, so a switch set over MQTT and the "
                              "record of retained topics last only until the daemon stops",
                        f"sudo install -d -o {SERVICE} -g {SERVICE} {state_dir} (the systemd unit's StateDirectory "
                        "makes /var/lib/emotion-edge)")
        return ok(name, "on: the daemon looks for faces")
    topic = Topics.for_device(config.device_id, config.mqtt.topic_prefix).detection_set
    return warn(name, "switched off (privacy mode, kept in the state dir): the camera stays closed and no face is "
                      "processed", f"switch it on in Home Assistant (Detection) or: mosquitto_pub -t {topic} -m ON")
