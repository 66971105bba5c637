"""Background work of the HTTP server (analyses, preview encoding) yields the CPU to the camera loop."""

from __future__ import annotations

import os
import threading

# Linux applies niceness per thread: the server's worker threads run at this niceness, so when CPU is short the
# camera loop wins it and an upload or the preview waits a little: the device's own sensing comes first.
WORKER_NICE = 10


def lower_thread_priority(nice: int = WORKER_NICE) -> None:
    """Lower the calling thread to `nice` (idempotent; a no-op where unsupported or not permitted)."""
    try:
        thread = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, thread) < nice:
            os.setpriority(os.PRIO_PROCESS, thread, nice)
    except (AttributeError, OSError):
        pass
