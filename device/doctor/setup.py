"""Doctor's checks of what `run` is given: the config, the camera, the emotion model, the face detector."""

from __future__ import annotations

import grp
import importlib.util
import os
import pwd
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emotion_edge.device.config import DaemonConfig

from emotion_edge.device.doctor.base import (
    DEFAULT_CONFIG,
    CheckResult,
    DoctorInput,
    HostPaths,
    fail,
    ok,
    warn,
)

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


def group_result(name: str, group: str, what: str) -> CheckResult | None:
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
        return group_result(name, "video", "may open the camera") or fail(
            name, f"cannot open {', '.join(unreadable)}", "add the user to the 'video' group")
    return group_result(name, "video", "may open the camera") or ok(name, f"picamera2, {len(nodes)} video node(s)")


def _check_v4l2(source: str, host: HostPaths) -> CheckResult:
    name = "camera"
    node = host.dev / f"video{source}" if source.isdigit() else host.dev / Path(source).name
    if not node.exists():
        found = ", ".join(str(n) for n in _video_nodes(host)) or "none"
        return fail(name, f"source {source!r}: {node} does not exist (video devices here: {found})",
                    "plug the webcam in (`v4l2-ctl --list-devices` lists them) or set [camera] source to one that exists")
    if not os.access(node, os.R_OK | os.W_OK):
        return group_result(name, "video", "may open cameras") or fail(
            name, f"{node} exists but this user cannot open it", "add the user to the 'video' group")
    return group_result(name, "video", "may open cameras") or ok(name, f"V4L2 device {node}")


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


