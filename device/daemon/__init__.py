"""The running device: the camera loop, its live state, whether it is sensing (sensing.py), the detection switch
(control.py), systemd notifications and the status file, and `app`, the one
composition root that builds, starts and stops every part.
"""

from emotion_edge.device import lazy_exports

_EXPORTS = {
    "LiveState": "live",
    "Snapshot": "live",
    "DetectionSwitch": "control",
    "SensingMonitor": "sensing",
    "sensing_state": "sensing",
    "Daemon": "loop",
    "LoopCounters": "loop",
    "ReadingHandler": "loop",
    "build_source": "app",
    "change_logger": "loop",
    "ServiceNotifier": "service",
    "StatusFile": "service",
    "read_status": "service",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
