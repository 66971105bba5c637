"""The device's messages beside the events: the retained room `state` and `sensing`, and the periodic `stats`.

`RoomPublication` is the worker thread's record of what is due: the latest room and sensing state, whether each
still has to go out, and when the room last went (a changing room is published at most every
`state_min_interval_s`, its latest value winning). Every connect makes both due again, so a retained value of an
earlier connection never stands. `sensing` goes out before the room: the room that follows it is read with it.

The publisher (publisher.py) owns the client and decides when it is connected; this module builds the payloads
and publishes them with the client it is handed.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import paho.mqtt.client as mqtt

from emotion_edge.device.daemon.sensing import SensingState
from emotion_edge.device.mqtt.config import Topics
from emotion_edge.device.mqtt.events import PAYLOAD_VERSION, iso_utc
from emotion_edge.device.room import RoomState, room_state


def state_payload(device_id: str, room: RoomState, sensing: SensingState) -> str:
    return json.dumps({"version": PAYLOAD_VERSION, "device_id": device_id, "time": iso_utc(time.time()),
                       **room.to_dict(), "sensing": sensing})


def stats_payload(device_id: str, stats: dict[str, Any], model_sha256: str, cpu_temp_c: float | None) -> str:
    """The stats message: the providers' `stats`, then the model and the CPU temperature (which win)."""
    payload = {"version": PAYLOAD_VERSION, "device_id": device_id, "time": iso_utc(time.time()), **stats,
               "model_sha256": model_sha256, "model_version": model_sha256[:12], "cpu_temp_c": cpu_temp_c}
    return json.dumps(payload, default=str)


def publish_state(client: mqtt.Client, topics: Topics, device_id: str, room: RoomState,
                  sensing: SensingState) -> mqtt.MQTTMessageInfo:
    return client.publish(topics.state, state_payload(device_id, room, sensing), qos=1, retain=True)


def publish_stopped(client: mqtt.Client, topics: Topics, device_id: str, labels: tuple[str, ...]) -> None:
    """A clean stop: the room is empty and nobody senses it. Published before `stopped`, else a retained state
    of the last faces would stand for a device that is off."""
    publish_state(client, topics, device_id, room_state(None, labels), "stopped")
    client.publish(topics.sensing, "stopped", qos=1, retain=True)


class RoomPublication:
    """The room state and sensing the worker thread publishes: what is latest, what is due, and when."""

    def __init__(self, topics: Topics, device_id: str, labels: tuple[str, ...], min_interval_s: float):
        self.topics = topics
        self.device_id = device_id
        self.min_interval_s = min_interval_s
        # The room before any frame is an empty one: published at once on connect, so a retained room of an
        # earlier run never stands for this one.
        self.room: RoomState = room_state(None, labels)
        self.room_dirty = True
        self.sensing: SensingState = "starting"
        self.sensing_dirty = True
        self.room_published_at = -math.inf

    def room_changed(self, room: RoomState) -> None:
        self.room, self.room_dirty = room, True

    def sensing_changed(self, state: SensingState) -> None:
        self.sensing, self.sensing_dirty, self.room_dirty = state, True, True  # the room carries `sensing` too

    def reconnected(self) -> None:
        self.room_dirty = self.sensing_dirty = True

    def due_in(self, now: float) -> float:
        """Seconds until the room may go out (0: now; inf: nothing to publish)."""
        if not self.room_dirty:
            return math.inf
        return max(self.room_published_at + self.min_interval_s - now, 0.0)

    def publish_due(self, client: mqtt.Client) -> None:
        """Publish `sensing` if it changed, then the room if it changed and its interval has passed."""
        if self.sensing_dirty:
            client.publish(self.topics.sensing, self.sensing, qos=1, retain=True)
            self.sensing_dirty = False
        now = time.monotonic()
        if not self.room_dirty or now - self.room_published_at < self.min_interval_s:
            return
        publish_state(client, self.topics, self.device_id, self.room, self.sensing)
        self.room_dirty, self.room_published_at = False, now
