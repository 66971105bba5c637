"""`emotion-edge listen`: subscribe to a device's topics and print every message as one JSON line.

For people checking a device ("is it publishing? what?"), for scripts (`| jq`)
and for the tests, which subscribe through the same `Listener` a user runs.
It connects the way the daemon does (mqtt_connection.py), so TLS and password
settings that work here work for the daemon too.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt

from emotion_edge.device.mqtt_config import MqttConfig, MqttTlsConfig, Topics, read_password
from emotion_edge.device.mqtt_connection import BrokerConnection, describe_refusal, make_client

KINDS = ("availability", "events", "state", "stats")


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
            raise ValueError("a persistent listener needs a client id: the broker keeps its session under it")
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
        """Connect and subscribe; ValueError with the broker's reason if it refuses or does not answer."""
        try:
            self._client.connect(self.connection.host, self.connection.port, self.connection.keepalive_s)
        except OSError as exc:
            raise ValueError(f"cannot connect to {self.connection.address}: {exc}") from None
        self._client.loop_start()
        if not self._ready.wait(timeout) or self._refusal:
            self.close()
            raise ValueError(self._refusal or f"{self.connection.address} did not accept the subscription within {timeout:g} s")
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


def subscriptions(prefix: str, kinds: tuple[str, ...] = KINDS) -> list[str]:
    topics = Topics(prefix)
    return [getattr(topics, kind) for kind in kinds]


def add_listen(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("listen", help="print a device's MQTT messages as they arrive, one JSON object per line",
                       description="Subscribe to emotion-edge topics (availability, events, state, stats) and print "
                                   "each message as {\"topic\", \"retained\", \"payload\"}. Connection settings come "
                                   "from --config's [mqtt] section, then these options.")
    p.add_argument("--config", type=Path, help="daemon TOML config whose [mqtt] section (broker, TLS, login) applies")
    p.add_argument("--host", help="broker host (default: the config's, else localhost)")
    p.add_argument("--port", type=int, help="broker port (default: the config's, else 1883, 8883 with --tls)")
    p.add_argument("--device", default="+", help="device id to follow (default: + for every device)")
    p.add_argument("--prefix", help="topic prefix, overriding emotion-edge/<device>")
    p.add_argument("--only", action="append", choices=KINDS, help="only these topics (repeatable; default: all)")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--ca-file", type=Path, help="CA certificate (PEM) for TLS; default: the system's CAs")
    p.add_argument("--certfile", type=Path, help="client certificate (PEM) for TLS")
    p.add_argument("--keyfile", type=Path, help="client certificate key (PEM) for TLS")
    p.add_argument("--username", help="broker user name")
    p.add_argument("--password-file", type=Path, help="file holding the broker password")
    p.add_argument("--password-env", help="environment variable holding the broker password")
    p.add_argument("--client-id", default="", help="client id (needed with --persistent)")
    p.add_argument("--persistent", action="store_true",
                   help="keep a broker session: messages sent while this listener is away are delivered on return")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages (0: run until interrupted)")
    p.add_argument("--timeout", type=float, default=0.0, help="exit after this many seconds (0: no limit)")
    p.set_defaults(handler=run_listen)


def connection_from_args(args: argparse.Namespace) -> BrokerConnection:
    from emotion_edge.device.config import load_config

    config = load_config(args.config).mqtt if args.config else MqttConfig()
    tls = config.tls
    if args.tls or args.ca_file or args.certfile:
        tls = MqttTlsConfig(enabled=True, ca_file=args.ca_file or tls.ca_file, certfile=args.certfile or tls.certfile,
                            keyfile=args.keyfile or tls.keyfile)
    login: dict[str, Any] = {}
    if args.username is not None or args.password_file or args.password_env:
        login = {"username": config.username if args.username is None else args.username,
                 "password_file": args.password_file, "password_env": args.password_env or ""}
    config = replace(config, tls=tls, **login)
    port = args.port or (config.port if args.config or not tls.enabled else 8883)
    return BrokerConnection(args.host or config.host, port, tls, config.username, read_password(config),
                            config.keepalive_s, reconnect_min_s=0.5, reconnect_max_s=5.0)


def run_listen(args: argparse.Namespace) -> int:
    connection = connection_from_args(args)
    prefix = args.prefix or f"emotion-edge/{args.device}"
    kinds = tuple(args.only) if args.only else KINDS
    done = threading.Event()
    printed = 0

    def show(received: Received) -> None:
        nonlocal printed
        print(received.to_json(), flush=True)
        printed += 1
        if args.count and printed >= args.count:
            done.set()

    listener = Listener(connection, subscriptions(prefix, kinds), args.client_id, args.persistent, on_message=show)
    with listener:
        print(f"listening on {connection.address} to {prefix}/{{{','.join(kinds)}}}", file=sys.stderr, flush=True)
        try:
            done.wait(args.timeout or None)
        except KeyboardInterrupt:
            pass
    return 0
