"""Secrets (the MQTT password, the HTTP token) live in a file or an environment variable, never in the config.

The config is printed, logged and copied around, and a secret in it would leak
with it: only where to find a secret is configured. One reader serves every
secret, so they agree on what a secret file holds and on errors that name the
setting and the file, never the value.
"""

from __future__ import annotations

from pathlib import Path

from emotion_edge.device.config.schema import ConfigError


def read_secret_file(path: Path, setting: str, fix: str) -> str:
    """The secret in `path`, without the surrounding whitespace an editor or `echo` adds.

    Raises ConfigError naming `setting` and the file, followed by `fix` (what to do), when the file cannot be
    read or holds nothing.
    """
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{setting}: cannot read {path} ({reason}); {fix}") from None
    if not secret:
        raise ConfigError(f"{setting}: {path} is empty; {fix}")
    return secret
