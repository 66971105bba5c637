"""Home Assistant MQTT discovery: one device with sensors (dominant emotion, faces in view, each emotion's share of
the faces in view, fps) and an event entity.

Home Assistant creates the entities from retained config messages under
`<discovery_prefix>/<component>/<node_id>/<object_id>/config`. Every entity
reads the topics the device already publishes (no extra traffic) and is tied to
the availability topic: `online` makes it available, and both `offline` (the
will) and `stopped` (clean shutdown) make it unavailable, which is why the
availability entry maps every other payload to `offline` with a template.
Home Assistant's own MQTT schemas judge these configs (tests/test_homeassistant.py, in a real Home
Assistant's venv), and a real Home Assistant shows the device they describe.
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
        # QoS 1: Home Assistant subscribes at this QoS, so the spool's at-least-once delivery reaches it, not
        # only the broker (without `qos` Home Assistant subscribes at QoS 0).
        "qos": 1,
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
        *share_sensors(topics, labels),
        ("event", "emotion_change", {
            "name": "Emotion change", "state_topic": topics.events, "icon": "mdi:emoticon-excited-outline",
            "event_types": [*labels, LEFT],
            # Home Assistant wants a JSON object with `event_type`; the other keys become the event's attributes.
            "value_template": (
                "{\"event_type\": \"{{ '" + LEFT + "' if value_json.type == 'end' else value_json.after.emotion }}\", "
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


def share_sensors(topics: Topics, labels: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    """One measurement sensor per emotion: the percent of the faces in view showing it (0 with none), from the
    state topic; `state_class: measurement` makes Home Assistant keep long-term statistics (hourly mean, min, max)."""
    return [
        ("sensor", f"share_{node_id(label)}", {
            "name": f"{label.capitalize()} share", "state_topic": topics.state, "icon": "mdi:chart-donut",
            "unit_of_measurement": "%", "state_class": "measurement",
            "value_template": (f"{{{{ ((100 * value_json.counts['{label}'] / value_json.faces) | round(1)) "
                               f"if value_json.faces else 0 }}}}"),
        })
        for label in labels
    ]


def status_topic(ha: HomeAssistantConfig) -> str:
    """Home Assistant's birth/last-will topic (`birth_topic`, its own setting, default `homeassistant/status`):
    `online` there means it (re)started and needs the configs again."""
    return ha.birth_topic
