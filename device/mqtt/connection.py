"""One way to build a paho-mqtt 2.x client (TLS, credentials, backoff) for both the daemon and `emotion-edge listen`.

The publisher and the subscriber tool must agree on how TLS and passwords are
set up, or "it works with listen" would prove nothing about the daemon.
"""

from __future__ import annotations

import ssl
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


class BrokerError(EmotionEdgeError, ValueError):
    """The broker cannot be reached or refuses us, or the TLS files cannot be loaded: the message says which."""


def make_client(connection: BrokerConnection, client_id: str, clean_session: bool = True) -> mqtt.Client:
    """A configured but unconnected client; TLS file problems raise BrokerError (a ValueError) naming the setting."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                         protocol=mqtt.MQTTv311)
    # paho's own backoff doubles from min to max between attempts; it runs on paho's thread, never the camera's.
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
