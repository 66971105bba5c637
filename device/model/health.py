"""The deploy's health check: does the running daemon, by its status file, run this model and process frames with it?"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from emotion_edge.device.daemon.service import read_status
from emotion_edge.device.model.store import StoreError


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists, whoever owns it (the deploy's health check and `doctor` both ask)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # the service user's process, seen from the deploy user
    return True


def health_verdict(status: dict[str, Any] | None, sha: str, since: float, now: float,
                   pid_alive: Callable[[int], bool] = pid_alive) -> tuple[bool | None, str]:
    """(True, why) healthy, (False, why) failed for good, (None, why) not yet: the daemon runs `sha` and
    processed a frame after `since` (wall clock of the activation)."""
    if status is None:
        return None, "no status file yet: is the service running?"
    pid = int(status.get("pid", 0))
    if not pid or not pid_alive(pid):
        return None, f"the daemon that wrote the status (pid {pid}) is not running"
    error = status.get("reload_error") or {}
    if Path(str(error.get("target", ""))).name == f"{sha}.tflite" and float(error.get("at", 0)) >= since:
        return False, f"the daemon refused the model: {error.get('reason')}"
    running = status.get("model_sha256", "")
    last_frame = status.get("last_frame_at")
    if running != sha:
        return None, f"the daemon still runs model {running[:12]}"
    # A frame after the load, not just after the flip: one processed between the flip and the reload used the old model.
    if last_frame is None or float(last_frame) <= max(since, float(status.get("model_loaded_at", 0))):
        age = "no frame yet" if last_frame is None else f"last frame {now - float(last_frame):.1f} s ago"
        return None, f"the daemon loaded the model but processed no frame with it ({age})"
    return True, f"pid {pid} runs {sha[:12]}, {status.get('frames')} frames, last {now - float(last_frame):.1f} s ago"


def wait_healthy(status_file: Path, sha: str, since: float, timeout: float, poll: float = 0.2) -> str:
    """Poll the daemon's status file until `health_verdict` decides; raises StoreError with the reason."""
    deadline = time.monotonic() + timeout
    while True:
        ok, why = health_verdict(read_status(status_file), sha, since, time.time())
        if ok:
            return why
        if ok is False:
            raise StoreError(why)
        if time.monotonic() >= deadline:
            raise StoreError(f"not healthy after {timeout:g} s: {why} (status file {status_file})")
        time.sleep(poll)
