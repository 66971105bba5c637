"""The daemon's configuration: `DaemonConfig` and its TOML loader, the strict schema builder, secret files.

May import: the config dataclasses of the parts it aggregates (detection, tracking, smoothing, pipeline, mqtt,
web, displays). Nothing imports the aggregate `DaemonConfig` except the composition root and the commands.
"""

from emotion_edge.device import lazy_exports

_EXPORTS = {
    "CameraConfig": "daemon",
    "DaemonConfig": "daemon",
    "LogConfig": "daemon",
    "ModelConfig": "daemon",
    "PipelineConfig": "daemon",
    "ServiceConfig": "daemon",
    "load_config": "daemon",
    "parse_config": "daemon",
    "ConfigError": "schema",
    "build": "schema",
    "default_device_id": "identity",
    "read_secret_file": "secrets",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
