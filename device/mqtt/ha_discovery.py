"""Home Assistant MQTT discovery: one device whose entities read the topics the device already publishes.

Home Assistant creates the entities from retained config messages under
`<discovery_prefix>/<component>/<node_id>/<object_id>/config` (every entity and
the topic it reads: README "Home Assistant"). Two availability levels:

- the connection (`availability`: `online`; the will `offline` and a clean
  `stopped` are not), which every entity follows;
- sensing (`sensing`: only `sensing` is available; `starting`, `camera_down`,
  `paused`, `stopped` are not), which the room entities (dominant emotion, faces,
  occupancy, shares, the event entity) follow too (`availability_mode: all`).

So with the camera down the room entities go unavailable instead of showing the
last emotion, while the diagnostics (camera problem, sensing, the detection
switch, uptime, temperature, ...) stay visible and say why.
Home Assistant's own MQTT schemas judge these configs (tests/test_homeassistant.py, in a real Home
Assistant's venv), and a real Home Assistant shows the device they describe.
"""

from __future__ import annotations

import re
from typing import Any

from emotion_edge.device import __version__
from emotion_edge.device.daemon.sensing import STATES as SENSING_STATES
from emotion_edge.device.mqtt.config import HomeAssistantConfig, Topics

# The event entity's event types besides the emotions (a face's emotion changed to it): a face appeared, a face left.
APPEARED = "appeared"
LEFT = "left"
NO_FACE = "none"


def node_id(device_id: str) -> str:
    """Home Assistant allows only [a-zA-Z0-9_-] in discovery topic ids."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)


def connection_availability(topics: Topics) -> dict[str, str]:
    return {"topic": topics.availability, "value_template": "{{ 'online' if value == 'online' else 'offline' }}"}


def sensing_availability(topics: Topics) -> dict[str, str]:
    return {"topic": topics.sensing, "value_template": "{{ 'online' if value == 'sensing' else 'offline' }}"}


def discovery_messages(ha: HomeAssistantConfig, topics: Topics, device_id: str, labels: tuple[str, ...], *,
                       configuration_url: str | None = None, switch: bool = True,
                       stats_interval_s: float = 30.0) -> list[tuple[str, dict[str, Any]]]:
    """(topic, config) for every entity; publish each retained.

    `configuration_url`: the status page, when Home Assistant can reach it; `switch`: the detection switch entity
    (the daemon listens on its command topic); `stats_interval_s`: how often the stats sensors are refreshed.
    """
    node = node_id(device_id)
    device: dict[str, Any] = {
        "identifiers": [f"emotion_edge_{node}"],
        "name": f"emotion-edge {device_id}",
        "manufacturer": "emotion-edge",
        "model": "Raspberry Pi facial-emotion sensor",
        "sw_version": __version__,
    }
    if configuration_url:
        device["configuration_url"] = configuration_url
    common = {
        "device": device,
        "origin": {"name": "emotion-edge", "sw_version": __version__},
        # QoS 1: Home Assistant subscribes at this QoS, so the spool's at-least-once delivery reaches it, not
        # only the broker (without `qos` Home Assistant subscribes at QoS 0).
        "qos": 1,
    }
    room = {"availability": [connection_availability(topics), sensing_availability(topics)],
            "availability_mode": "all"}
    diagnostic = {"availability": [connection_availability(topics)], "entity_category": "diagnostic"}
    entities = [
        *[(component, object_id, {**config, **room}) for component, object_id, config in room_entities(topics, labels)],
        *[(component, object_id, {**diagnostic, **config})
          for component, object_id, config in diagnostic_entities(topics, stats_interval_s, switch)],
    ]
    return [
        (f"{ha.discovery_prefix}/{component}/{node}/{object_id}/config",
         {**config, **common, "unique_id": f"emotion_edge_{node}_{object_id}"})
        for component, object_id, config in entities
    ]


def room_entities(topics: Topics, labels: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    """What the device sees: unavailable whenever it is not sensing."""
    return [
        # An enum sensor: no state_class or unit (Home Assistant refuses them with options).
        ("sensor", "dominant_emotion", {
            "name": "Dominant emotion", "state_topic": topics.state, "icon": "mdi:emoticon-outline",
            "device_class": "enum", "options": [*labels, NO_FACE],
            "value_template": f"{{{{ value_json.dominant if value_json.dominant else '{NO_FACE}' }}}}",
        }),
        ("sensor", "faces", {
            "name": "Faces in view", "state_topic": topics.state, "icon": "mdi:account-group",
            "state_class": "measurement", "value_template": "{{ value_json.faces }}",
        }),
        ("binary_sensor", "occupancy", {
            "name": "Someone in view", "state_topic": topics.state, "device_class": "occupancy",
            "value_template": "{{ 'ON' if value_json.faces > 0 else 'OFF' }}",
        }),
        *share_sensors(topics, labels),
        ("event", "emotion_change", event_entity(topics, labels)),
    ]


def event_entity(topics: Topics, labels: tuple[str, ...]) -> dict[str, Any]:
    """Fires on a face appearing (`appeared`), its emotion changing (the new emotion) and leaving (`left`).

    The template renders nothing (which Home Assistant's MQTT event entity ignores) for a `refresh`, which
    changes nothing, and for a duplicate: at-least-once delivery may bring an event twice, recognised by a `seq`
    not above the last fired one (`this.attributes.seq`) in the same `stream` (a new stream, after the device's
    state was wiped, numbers from 1 again). The attributes: the track's `id`, the new `emotion`, the `previous`
    one, `confidence`, `reason`, `track_id`, `seq` and `stream`.
    """
    template = (
        "{% set v = value_json %}"
        "{% set last = this.attributes if this is defined and this.attributes is defined else {} %}"
        "{% if v.reason == 'refresh' or (v.stream == last.stream | default('') and v.seq <= last.seq | default(0) | int(0)) %}"
        "{% else %}"
        f"{{{{ {{'event_type': ('{LEFT}' if v.type == 'end' else '{APPEARED}' if v.type == 'new' else v.emotion),"
        " 'emotion': v.emotion, 'previous': v.previous, 'confidence': v.confidence, 'reason': v.reason,"
        " 'id': v.id, 'track_id': v.track_id, 'seq': v.seq, 'stream': v.stream} | tojson }}"
        "{% endif %}"
    )
    return {
        "name": "Emotion change", "state_topic": topics.events, "icon": "mdi:emoticon-excited-outline",
        "event_types": [APPEARED, *labels, LEFT], "value_template": template,
    }


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


def diagnostic_entities(topics: Topics, stats_interval_s: float, switch: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """How the device is doing: available while it is connected, whatever the camera does.

    The stats sensors expire after three missed stats messages: a hung daemon does not keep showing old figures.
    """
    expire = max(int(3 * stats_interval_s), 1)

    def stat(object_id: str, name: str, template: str, **extra: Any) -> tuple[str, str, dict[str, Any]]:
        return ("sensor", object_id, {"name": name, "state_topic": topics.stats, "value_template": template,
                                      "expire_after": expire, **extra})

    entities: list[tuple[str, str, dict[str, Any]]] = [
        ("binary_sensor", "camera_problem", {
            "name": "Camera problem", "state_topic": topics.sensing, "device_class": "problem",
            "value_template": "{{ 'ON' if value == 'camera_down' else 'OFF' }}",
        }),
        ("sensor", "sensing", {
            "name": "Sensing", "state_topic": topics.sensing, "icon": "mdi:eye-check-outline",
            "device_class": "enum", "options": list(SENSING_STATES),
        }),
        stat("fps", "Frame rate", "{{ value_json.fps }}", icon="mdi:speedometer", unit_of_measurement="fps",
             state_class="measurement"),
        stat("uptime", "Uptime", "{{ value_json.uptime_s | round(0) }}", device_class="duration",
             unit_of_measurement="s"),
        # cpu_temp_c is null where the kernel has none; Jinja renders that as `None`, which Home Assistant shows
        # as unknown.
        stat("cpu_temperature", "CPU temperature", "{{ value_json.cpu_temp_c }}", device_class="temperature",
             unit_of_measurement="°C", state_class="measurement"),
        stat("model_version", "Model version", "{{ value_json.model_version }}", icon="mdi:brain"),
        stat("dropped_frames", "Dropped frames", "{{ value_json.dropped_frames }}", icon="mdi:filmstrip-off",
             state_class="total_increasing"),
        stat("spool_depth", "Events waiting", "{{ value_json.spool.depth }}", icon="mdi:tray-full",
             state_class="measurement"),
        stat("dropped_events", "Dropped events", "{{ value_json.spool.dropped }}", icon="mdi:delete-alert",
             state_class="total_increasing"),
    ]
    if switch:
        entities.append(("switch", "detection", {
            "name": "Detection", "icon": "mdi:eye", "entity_category": "config",
            "state_topic": topics.detection, "command_topic": topics.detection_set,
            "payload_on": "ON", "payload_off": "OFF", "retain": False,
        }))
    return entities


def status_topic(ha: HomeAssistantConfig) -> str:
    """Home Assistant's birth/last-will topic (`birth_topic`, its own setting, default `homeassistant/status`):
    `online` there means it (re)started and needs the configs again."""
    return ha.birth_topic
