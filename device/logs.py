"""Logging set-up: readable text for people, one JSON object per line for journald and log shippers."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Mapping

# Attributes every LogRecord has; anything else came from `extra=` and belongs in the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **{k: v for k, v in vars(record).items() if k not in _STANDARD},
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def fields_text(values: Mapping[str, Any], prefix: str = "") -> str:
    """`values` as `key=value` pairs, nested keys dotted (`mqtt.delivered=12`), floats to 2 decimals.

    For messages whose numbers are the point (the periodic stats): the text format prints only the message, so
    numbers passed only in `extra=` reach the JSON format alone and a text log shows a bare "stats".
    """
    parts = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value:
                parts.append(fields_text(value, f"{name}."))
        elif isinstance(value, float):
            parts.append(f"{name}={round(value, 2):g}")
        else:
            text = str(value)
            parts.append(f"{name}={json.dumps(text) if (not text or ' ' in text) else text}")
    return " ".join(parts)
