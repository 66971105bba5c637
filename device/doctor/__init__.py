"""`emotion-edge doctor`: every check the daemon's parts need, run in the order a problem usually shows up.

A Pi owner runs it when something does not work. It reads the same config file as `run` and checks, in the
order a problem usually shows up: the config itself, the camera (picamera2 or a V4L2 device, the `video`
group), the emotion model and its contract, the face detector's files, the MQTT password and TLS files, the
broker (a TCP connect, then an MQTT CONNECT with the configured login), the spool's free space, the I2C
display, the HTTP bind and token, the service under systemd, the running daemon's status file, the detection
switch (off is the privacy mode), the clock, and
the CPU's temperature and throttling flags where the Pi reports them.

Every check returns a `CheckResult`: OK, WARN (works, but look at it) or FAIL (the daemon will not work as
configured); a WARN or FAIL says what to do. The exit status is 1 when any check FAILs. Nothing here changes
the system: the broker sees one short-lived client named `<client_id>-doctor` (not the daemon's id, which
would disconnect the running daemon), and the HTTP port is only bound for an instant."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from emotion_edge.device.doctor.base import DEFAULT_CONFIG, CheckResult, DoctorInput, HostPaths, Level
from emotion_edge.device.doctor.network import check_broker, check_credentials, check_display, check_http, check_spool
from emotion_edge.device.doctor.setup import check_camera, check_detector, check_model, resolve_config
from emotion_edge.device.doctor.system import (
    check_clock,
    check_daemon,
    check_detection,
    check_service,
    check_temperature,
    check_throttling,
    decode_throttled,
)

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
        lambda: check_detection(config),
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



__all__ = [
    "DEFAULT_CONFIG", "CheckResult", "DoctorInput", "HostPaths", "Level", "check_broker", "check_camera", "check_clock", "check_credentials",
    "check_daemon", "check_detection", "check_detector", "check_display", "check_http", "check_model", "check_service", "check_spool",
    "check_temperature", "check_throttling", "decode_throttled", "doctor", "resolve_config", "run_checks", "summary",
]
