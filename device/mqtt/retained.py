"""What this device left retained on the broker, so that nothing it no longer publishes stays behind.

Retained messages outlive the daemon: a Home Assistant discovery config keeps its entity (and an orphaned device)
alive, a retained `state` keeps showing a room nobody watches. The daemon records the retained topics it last
published (a small file in the state dir); on the next start, whatever the record names that the running config
no longer publishes (discovery switched off, a changed `device_id`, `topic_prefix` or `discovery_prefix`) is
cleared with an empty retained message, which is how MQTT deletes one. `emotion-edge forget` clears them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from emotion_edge.device.statefile import StateFile

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
