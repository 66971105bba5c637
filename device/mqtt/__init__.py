"""MQTT: broker config and connection, event building, the on-disk spool and its sequence mark, delivery (spool,
in-flight window, acks; no paho), the publisher (the paho side), the room state, sensing and stats messages
(status), Home Assistant discovery, the record of retained topics and `forget`, and the listener.
"""

from emotion_edge.device import lazy_exports

_EXPORTS = {
    "HomeAssistantConfig": "config",
    "MqttConfig": "config",
    "MqttTlsConfig": "config",
    "Topics": "config",
    "client_id_for": "config",
    "device_prefix": "config",
    "read_password": "config",
    "BrokerConnection": "connection",
    "describe_refusal": "connection",
    "make_client": "connection",
    "tls_context": "connection",
    "EmotionEvent": "events",
    "EventBuilder": "events",
    "EventReason": "events",
    "EventType": "events",
    "FaceState": "events",
    "PAYLOAD_VERSION": "events",
    "interrupted_end": "events",
    "iso_utc": "events",
    "new_event_id": "events",
    "discovery_messages": "ha_discovery",
    "forget_device": "forget",
    "RetainedRecord": "retained",
    "RoomPublication": "status",
    "state_payload": "status",
    "stats_payload": "status",
    "retire_stale": "retained",
    "node_id": "ha_discovery",
    "status_topic": "ha_discovery",
    "Listener": "listen",
    "Received": "listen",
    "subscriptions": "listen",
    "Delivery": "delivery",
    "MqttPublisher": "publisher",
    "PublisherCounters": "inbox",
    "OpenTrack": "mark",
    "SeqMark": "mark",
    "Spool": "spool",
    "SpoolError": "spool",
    "SpoolStats": "spool",
    "TrackMark": "spool",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
