"""The listener behind `emotion-edge listen` (its argparse: commands/listen.py): subscribe to a device's topics,
print every message as one JSON line.

For people checking a device ("is it publishing? what?"), for scripts (`| jq`)
and for the tests, which subscribe through the same `Listener` a user runs.
It connects the way the daemon does (mqtt/connection.py), so TLS and password
settings that work here work for the daemon too.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import paho.mqtt.client as mqtt

from emotion_edge.device.errors import UsageError
from emotion_edge.device.mqtt.config import Topics
from emotion_edge.device.mqtt.connection import BrokerConnection, BrokerError, describe_refusal, make_client

TOPIC_KINDS = ("availability", "events", "state", "stats", "sensing", "detection")


@dataclass(frozen=True)
class Received:
    topic: str
    payload: Any  # the parsed JSON, or the text for plain payloads (availability)
    retained: bool
    received_monotonic: float = field(compare=False)

    @classmethod
    def from_message(cls, message: mqtt.MQTTMessage) -> Received:
        text = message.payload.decode("utf-8", errors="replace")
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        if not isinstance(payload, (dict, list)):
            payload = text  # "online" and numbers stay as the text that was sent
        return cls(message.topic, payload, bool(message.retain), time.monotonic())

    @property
    def kind(self) -> str:
        return self.topic.rsplit("/", 1)[-1]

    def to_json(self) -> str:
        return json.dumps({"topic": self.topic, "retained": self.retained, "payload": self.payload})


class Listener:
    """A subscriber on paho's background thread; every message goes to `messages` (and to `on_message`, if given).

    `persistent` keeps a session on the broker under `client_id` (clean_session off, QoS 1), so QoS 1
    messages published while this listener is away are queued by the broker and delivered when it is back.
    """

    def __init__(self, connection: BrokerConnection, subscriptions: list[str], client_id: str = "",
                 persistent: bool = False, on_message: Callable[[Received], None] | None = None):
        if persistent and not client_id:
            raise UsageError("a persistent listener needs a client id: the broker keeps its session under it")
        self.connection = connection
        self.subscriptions = subscriptions
        self.messages: queue.Queue[Received] = queue.Queue()
        self._on_message = on_message
        self._client = make_client(connection, client_id, clean_session=not persistent)
        self._client.on_connect = self._connected
        self._client.on_subscribe = self._subscribed
        self._client.on_message = self._received
        self._ready = threading.Event()
        self._refusal: str | None = None

    def start(self, timeout: float = 10.0) -> Listener:
        """Connect and subscribe; BrokerError (a ValueError) with the broker's reason if it refuses or does not answer."""
        try:
            self._client.connect(self.connection.host, self.connection.port, self.connection.keepalive_s)
        except OSError as exc:
            raise BrokerError(f"cannot connect to {self.connection.address}: {exc}") from None
        self._client.loop_start()
        if not self._ready.wait(timeout) or self._refusal:
            self.close()
            raise BrokerError(self._refusal or f"{self.connection.address} did not accept the subscription within {timeout:g} s")
        return self

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: mqtt.ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            self._refusal = describe_refusal(reason, self.connection)
            self._ready.set()
            client.disconnect()
            return
        # Subscribing on every connect restores the subscriptions after a broker restart.
        client.subscribe([(topic, 1) for topic in self.subscriptions])

    def _subscribed(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list, properties: Any) -> None:
        self._ready.set()

    def _received(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = Received.from_message(message)
        self.messages.put(received)
        if self._on_message is not None:
            self._on_message(received)


def subscriptions(prefix: str, kinds: tuple[str, ...] = TOPIC_KINDS) -> list[str]:
    topics = Topics(prefix)
    return [getattr(topics, kind) for kind in kinds]
