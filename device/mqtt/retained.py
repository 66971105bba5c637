"""What this device left retained on the broker, so that nothing it no longer publishes stays behind.

Retained messages outlive the daemon: a Home Assistant discovery config keeps its entity (and an orphaned device)
alive, a retained `state` keeps showing a room nobody watches. The daemon records the retained topics it last
published (a small file in the state dir); on the next start, whatever the record names that the running config
no longer publishes (discovery switched off, a changed `device_id`, `topic_prefix` or `discovery_prefix`) is
cleared with an empty retained message, which is how MQTT deletes one. `emotion-edge forget` clears them all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from emotion_edge.device.statefile import StateFile

log = logging.getLogger(__name__)

FILE_NAME = "mqtt-retained.json"


@dataclass(frozen=True)
class RetainedRecord:
    discovery: tuple[str, ...] = ()  # Home Assistant config topics
    device: tuple[str, ...] = ()  # the device's own retained topics (availability, state, ...)

    @property
    def topics(self) -> tuple[str, ...]:
        return (*self.discovery, *self.device)

    @classmethod
    def load(cls, store: StateFile) -> RetainedRecord:
        data = store.load()

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key, [])
            return tuple(v for v in value if isinstance(v, str) and v) if isinstance(value, list) else ()

        return cls(strings("discovery"), strings("device"))

    def save(self, store: StateFile) -> bool:
        return store.save({"discovery": list(self.discovery), "device": list(self.device)})


def stale_topics(previous: RetainedRecord, current: RetainedRecord) -> list[str]:
    """Topics `previous` published retained that `current` does not: to be cleared."""
    keep = set(current.topics)
    return [topic for topic in dict.fromkeys(previous.topics) if topic not in keep]


def retire_stale(client: mqtt.Client, store: StateFile, current: RetainedRecord) -> list[str]:
    """Clear (empty retained payload, QoS 1) what `store` says was published and `current` no longer is, then
    record `current`; returns the cleared topics. Called on every connect, before anything else is retained."""
    stale = stale_topics(RetainedRecord.load(store), current)
    for topic in stale:
        client.publish(topic, b"", qos=1, retain=True)
    if stale:
        log.info("mqtt: cleared %d retained topic(s) this device no longer publishes (discovery off or the "
                 "device id changed)", len(stale), extra={"topics": stale})
    current.save(store)
    return stale
