"""One way to build a paho-mqtt 2.x client (TLS, credentials, backoff) for both the daemon and `emotion-edge listen`.

The publisher and the subscriber tool must agree on how TLS and passwords are
set up, or "it works with listen" would prove nothing about the daemon.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.mqtt.config import MqttConfig, MqttTlsConfig, read_password


@dataclass(frozen=True)
class BrokerConnection:
    host: str
    port: int
    tls: MqttTlsConfig = field(default_factory=MqttTlsConfig)
    username: str = ""
    password: str | None = field(default=None, repr=False)  # repr=False: never printed or logged with the rest
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0

    @classmethod
    def from_config(cls, config: MqttConfig) -> BrokerConnection:
        return cls(config.host, config.port, config.tls, config.username, read_password(config), config.keepalive_s,
                   config.reconnect_min_s, config.reconnect_max_s)

    @property
    def address(self) -> str:
        return f"{'mqtts' if self.tls.enabled else 'mqtt'}://{self.host}:{self.port}"


# While the broker is away, how often its port is tried with a bare TCP connect (a SYN, no MQTT, no TLS):
# often enough to be back within about this long of the broker, cheap enough for a broker that stays down.
PROBE_INTERVAL_S = 0.5


@dataclass
class LinkCounts:
    """How hard the client has tried to reach the broker: shown in tests and stats, so "no hammering" is checkable."""

    attempts: int = 0  # MQTT connection attempts (each a TCP connect, perhaps TLS, and a CONNECT packet)
    probes: int = 0  # bare TCP connects while waiting between attempts


def port_accepts(host: str, port: int, timeout_s: float = PROBE_INTERVAL_S) -> bool:
    """Whether `host`:`port` accepts a TCP connection now: the broker is back, whatever it then says to MQTT."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


class ProbingClient(mqtt.Client):
    """paho's client, whose wait between reconnect attempts ends as soon as a broker that was away accepts again.

    paho doubles its delay on every failed attempt, refused TCP included, so after a long outage it reconnects
    up to `reconnect_max_s` (60 s by default) after the broker is back, and every event waits that long. Here the
    wait also tries the port with a bare TCP connect every PROBE_INTERVAL_S: once a port that refused starts
    accepting, the wait ends and paho connects at once. A broker that accepts TCP but refuses MQTT (bad
    credentials, overload) never turns from refusing to accepting, so it keeps paho's full doubling backoff.

    paho offers no public hook for this: `_reconnect_wait` is the one method overridden (paho 2.1-2.x; the
    reconnect test fails if a paho release drops it), and it keeps paho's own delay bookkeeping, which a
    successful CONNACK resets.
    """

    def __init__(self, *args: object, probe_target: tuple[str, int], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.counts = LinkCounts()
        self._probe_target = probe_target
        self._stop_waiting = threading.Event()

    def reconnect(self) -> mqtt.MQTTErrorCode:
        self.counts.attempts += 1
        return super().reconnect()

    def disconnect(self, *args: object, **kwargs: object) -> mqtt.MQTTErrorCode:
        self._stop_waiting.set()  # a wait in progress ends now rather than after up to a whole probe interval
        return super().disconnect(*args, **kwargs)  # type: ignore[arg-type]

    def loop_stop(self) -> mqtt.MQTTErrorCode:
        self._stop_waiting.set()
        return super().loop_stop()

    def _reconnect_wait(self) -> None:
        with self._reconnect_delay_mutex:  # paho's doubling, as its own _reconnect_wait does it
            delay = self._reconnect_min_delay if self._reconnect_delay is None else min(
                self._reconnect_delay * 2, self._reconnect_max_delay)
            self._reconnect_delay = delay
        deadline = time.monotonic() + delay
        was_refusing = False
        while not self._stop_waiting.is_set() and (remaining := deadline - time.monotonic()) > 0:
            self.counts.probes += 1
            if port_accepts(*self._probe_target, timeout_s=min(PROBE_INTERVAL_S, remaining)):
                if was_refusing:
                    return  # the broker is back: connect now, not at the end of the backoff
            else:
                was_refusing = True
            self._stop_waiting.wait(max(0.0, min(PROBE_INTERVAL_S, deadline - time.monotonic())))


class BrokerError(EmotionEdgeError, ValueError):
    """The broker cannot be reached or refuses us, or the TLS files cannot be loaded: the message says which."""


def make_client(connection: BrokerConnection, client_id: str, clean_session: bool = True) -> ProbingClient:
    """A configured but unconnected client; TLS file problems raise BrokerError (a ValueError) naming the setting."""
    client = ProbingClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                           protocol=mqtt.MQTTv311, probe_target=(connection.host, connection.port))
    # paho's backoff doubles from min to max between attempts, cut short when the broker comes back (ProbingClient);
    # it runs on paho's thread, never the camera's.
    client.reconnect_delay_set(connection.reconnect_min_s, connection.reconnect_max_s)  # type: ignore[arg-type]
    if connection.username:
        client.username_pw_set(connection.username, connection.password)
    if connection.tls.enabled:
        client.tls_set_context(tls_context(connection.tls))
    return client


def tls_context(tls: MqttTlsConfig) -> ssl.SSLContext:
    """Verifying context: the configured CA file, else the system's CAs; hostname checked; optional client cert."""
    _require_file(tls.ca_file, "mqtt.tls.ca_file")
    _require_file(tls.certfile, "mqtt.tls.certfile")
    _require_file(tls.keyfile, "mqtt.tls.keyfile")
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.certfile is not None and tls.keyfile is not None:
            context.load_cert_chain(str(tls.certfile), str(tls.keyfile))
    except ssl.SSLError as exc:
        raise BrokerError(f"mqtt.tls: cannot load the CA file or client certificate ({exc.reason or exc}); "
                         "they must be PEM files") from None
    return context


def _require_file(path: Path | None, key: str) -> None:
    if path is not None and not path.is_file():
        raise BrokerError(f"{key}: {path} does not exist or is not a file")


def describe_refusal(reason: mqtt.ReasonCode, connection: BrokerConnection) -> str:
    """One line saying why the broker refused us and what to check (never the password itself)."""
    name = str(reason)
    where = f"broker {connection.address} refused the connection: {name}"
    if reason.value in (4, 5, 134, 135):  # 3.1.1 bad credentials / not authorized, and their MQTT 5 codes
        user = f"user {connection.username!r}" if connection.username else "no username (anonymous)"
        return (f"{where} ({user}); check mqtt.username and the password in mqtt.password_file or mqtt.password_env, "
                "and the broker's password file or ACL")
    if reason.value in (2, 133):
        return f"{where}; the client id is rejected: set mqtt.client_id to a valid, unique id"
    return f"{where}; retrying with backoff"
