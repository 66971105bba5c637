"""Validate MQTT discovery configs with Home Assistant's own code; runs in the Home Assistant venv, not the test venv.

stdin: {"discovery_prefix": "homeassistant", "messages": [[topic, config], ...]} (as discovery_messages() returns).
stdout: one JSON object per message, in order: {"topic", "error" (null when Home Assistant accepts the config),
"ignored" (keys Home Assistant drops without a word: its discovery schemas use REMOVE_EXTRA, so a misspelt option
would otherwise pass)}.

What is checked is what Home Assistant's MQTT discovery does with a retained config (homeassistant/components/mqtt/
discovery.py and entity.py, 2025.4): the topic must match its TOPIC_MATCHER under the prefix, the component must
be one it supports, `origin` must pass MQTT_ORIGIN_INFO_SCHEMA, and the config must pass the platform's
DISCOVERY_SCHEMA (types, required options, enum/state_class rules, templates that parse).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import tempfile
from typing import Any

import voluptuous as vol
from homeassistant.components.mqtt.const import SUPPORTED_COMPONENTS
from homeassistant.components.mqtt.discovery import TOPIC_MATCHER
from homeassistant.components.mqtt.schemas import MQTT_ORIGIN_INFO_SCHEMA
from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame


def check(prefix: str, topic: str, config: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"topic": topic, "error": None, "ignored": []}
    trimmed = topic.removeprefix(f"{prefix}/")
    match = TOPIC_MATCHER.match(trimmed) if trimmed != topic else None
    if match is None or match.end() != len(trimmed):
        result["error"] = f"not a discovery topic under {prefix!r} that Home Assistant matches"
        return result
    component = match.group("component")
    if component not in SUPPORTED_COMPONENTS:
        result["error"] = f"component {component!r} is not one Home Assistant's MQTT integration supports"
        return result
    try:
        if "origin" in config:
            MQTT_ORIGIN_INFO_SCHEMA(config["origin"])
        platform = importlib.import_module(f"homeassistant.components.mqtt.{component}")
        validated = platform.DISCOVERY_SCHEMA(dict(config))
    except vol.Invalid as exc:
        result["error"] = str(exc)
        return result
    result["ignored"] = sorted(set(config) - set(validated))
    return result


async def main() -> None:
    # Templates are compiled by a Home Assistant instance's template environment, as discovery does in the event
    # loop; the instance is never started.
    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)
        frame.async_setup(hass)
        request = json.load(sys.stdin)
        for topic, config in request["messages"]:
            print(json.dumps(check(request["discovery_prefix"], topic, config)))
        await hass.async_stop(force=True)


if __name__ == "__main__":
    asyncio.run(main())
