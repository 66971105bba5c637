"""The device's subcommands' argparse: run, serve, analyze, listen, report, device-model, doctor,
forget, device-id. Each handler
imports what it needs when it runs, so `emotion-edge --help` loads none of it.
"""

from emotion_edge.device import lazy_exports

_EXPORTS = {
    "add_analyze": "analyze",
    "add_device_model": "device_model",
    "add_device_id": "forget",
    "add_doctor": "doctor",
    "add_forget": "forget",
    "add_listen": "listen",
    "connection_from_args": "listen",
    "run_listen": "listen",
    "add_report": "report",
    "run_report": "report",
    "add_run": "run",
    "add_serve": "run",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
