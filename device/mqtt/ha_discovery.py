"""Home Assistant MQTT discovery: one device with sensors (dominant emotion, faces in view, fps) and an event entity.

Home Assistant creates the entities from retained config messages under
`<discovery_prefix>/<component>/<node_id>/<object_id>/config`. Every entity
reads the topics the device already publishes (no extra traffic) and is tied to
the availability topic: `online` makes it available, and both `offline` (the
will) and `stopped` (clean shutdown) make it unavailable, which is why the
availability entry maps every other payload to `offline` with a template.
The schema of these configs is device/schemas/ha_discovery.schema.json.
"""

from __future__ import annotations

import re
from typing import Any

from emotion_edge.device import __version__
from emotion_edge.device.mqtt.config import HomeAssistantConfig, Topics

# The event entity's event types: the emotion a face changed to, or that it left.
LEFT = "left"
NO_FACE = "none"


def node_id(device_id: str) -> str:
    """Home Assistant allows only [a-zA-Z0-9_-] in discovery topic ids."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)


def discovery_messages(ha: HomeAssistantConfig, topics: Topics, device_id: str,
                       labels: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """(topic, config) for every entity; publish each retained."""
    node = node_id(device_id)
    device = {
        "identifiers": [f"emotion_edge_{node}"],
        "name": f"emotion-edge {device_id}",
        "manufacturer": "emotion-edge",
        "model": "Raspberry Pi facial-emotion sensor",
        "sw_version": __version__,
    }
    common = {
        "device": device,
        "origin": {"name": "emotion-edge", "sw_version": __version__},
        "availability": [{"topic": topics.availability,
                          "value_template": "{{ 'online' if value == 'online' else 'offline' }}"}],
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        ("sensor", "dominant_emotion", {
            "name": "Dominant emotion", "state_topic": topics.state, "icon": "mdi:emoticon-outline",
            "device_class": "enum", "options": [*labels, NO_FACE],
            "value_template": f"{{{{ value_json.dominant if value_json.dominant else '{NO_FACE}' }}}}",
        }),
        ("sensor", "faces", {
            "name": "Faces in view", "state_topic": topics.state, "icon": "mdi:account-group",
            "state_class": "measurement", "value_template": "{{ value_json.faces }}",
        }),
        ("sensor", "fps", {
            "name": "Frame rate", "state_topic": topics.stats, "icon": "mdi:speedometer",
            "unit_of_measurement": "fps", "state_class": "measurement", "entity_category": "diagnostic",
            "value_template": "{{ value_json.fps }}",
        }),
        ("event", "emotion_change", {
            "name": "Emotion change", "state_topic": topics.events, "icon": "mdi:emoticon-excited-outline",
            "event_types": [*labels, LEFT],
            # Home Assistant wants a JSON object with `event_type`; the other keys become the event's attributes.
            "value_template": (
                "{\"event_type\": \"{{ value_json.after.emotion if value_json.after else '" + LEFT + "' }}\", "
                "\"track_id\": {{ value_json.track_id }}, \"type\": \"{{ value_json.type }}\", "
                "\"seq\": {{ value_json.seq }}}"
            ),
        }),
    ]
    return [
        (f"{ha.discovery_prefix}/{component}/{node}/{object_id}/config",
         {**config, **common, "unique_id": f"emotion_edge_{node}_{object_id}"})
        for component, object_id, config in entities
    ]


def status_topic(ha: HomeAssistantConfig) -> str:
    """Home Assistant's birth/last-will topic: `online` there means it (re)started and needs the configs again."""
    return f"{ha.discovery_prefix}/status"
