"""`emotion-edge forget`: remove everything this device left retained on the broker (its Home Assistant devices
and entities, its availability, state, sensing and switch state), for an uninstall or a device that is renamed
for good. Stop the daemon first: a running one publishes them again on its next connect.

What is cleared: the retained topics the daemon recorded (retained.py: also those of an earlier device id), and
whatever the broker still holds retained under this device's topic prefix and its node's discovery topics, found
by subscribing, so configs of an older release or other labels go too.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from emotion_edge.device.mqtt.config import HomeAssistantConfig, Topics
from emotion_edge.device.mqtt.connection import BrokerConnection, BrokerError, describe_refusal, make_client
from emotion_edge.device.mqtt.ha_discovery import node_id
from emotion_edge.device.mqtt.retained import RetainedRecord
from emotion_edge.device.statefile import StateFile

RETAINED_GRACE_S = 1.0  # after the SUBACKs, how long retained messages may still be arriving


def forget_device(connection: BrokerConnection, client_id: str, topics: Topics, ha: HomeAssistantConfig,
                  device_id: str, store: StateFile, timeout_s: float = 10.0) -> list[str]:
    """Clear this device's retained topics on the broker and its record; returns the topics cleared."""
    found: set[str] = set(RetainedRecord.load(store).topics)
    lock = threading.Lock()
    connected, subscribed = threading.Event(), threading.Event()
    refusal: list[str] = []
    patterns = [f"{topics.prefix}/#", f"{ha.discovery_prefix}/+/{node_id(device_id)}/+/config"]

    def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: mqtt.ReasonCode, props: object) -> None:
        if reason.is_failure:
            refusal.append(describe_refusal(reason, connection))
        else:
            client.subscribe([(pattern, 1) for pattern in patterns])
        connected.set()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain and message.payload:
            with lock:
                found.add(message.topic)

    client = make_client(connection, f"{client_id}-forget")
    client.on_connect = on_connect
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = on_message
    client.connect_async(connection.host, connection.port, connection.keepalive_s)
    client.loop_start()
    try:
        if not connected.wait(timeout_s) or refusal:
            raise BrokerError(refusal[0] if refusal else f"cannot reach the broker {connection.address} within "
                              f"{timeout_s:g} s; nothing was removed (check [mqtt] host and port)")
        subscribed.wait(timeout_s)
        time.sleep(RETAINED_GRACE_S)
        client.unsubscribe(patterns)
        with lock:
            cleared = sorted(found | set(topics.retained))
        infos = [client.publish(topic, b"", qos=1, retain=True) for topic in cleared]
        deadline = time.monotonic() + timeout_s
        for info in infos:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.01))
        if not all(info.is_published() for info in infos):
            raise BrokerError(f"the broker {connection.address} did not acknowledge every removal within "
                              f"{timeout_s:g} s; run the command again")
    finally:
        client.disconnect()
        client.loop_stop()
    store.remove()
    return cleared
