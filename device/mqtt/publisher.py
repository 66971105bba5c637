"""Publish the daemon's events, room state and stats over MQTT without losing an event, whatever the broker does.

Threads, and why:

- the camera loop calls `handle_reading` per frame; it only turns readings into
  events (events.py) and hands them over through a queue, so a slow disk or
  broker never slows the loop;
- paho's network thread (`loop_start`) connects asynchronously, reconnects with
  backoff (cut short as soon as a broker that was away accepts again: see
  connection.ProbingClient) and runs the callbacks; callbacks only post to the queue (and publish
  availability and discovery, which touch no shared state);
- the worker thread owns the delivery (delivery.py, no paho code): it appends
  events to the spool (assigning their sequence numbers), hands them to paho in
  order, and deletes each one when its PUBACK arrives (`on_publish` with its mid).

This module is the paho side: the client, its callbacks, availability, discovery,
and the detection switch's command topic; it sends the room state, sensing and stats
messages that status.py builds and schedules.

True at every moment: the retained `state` is published (empty, `sensing: starting`)
as soon as the device connects, before any frame; when the device stops seeing (the
camera lost beyond the stall window, detection switched off) its open tracks end and
the room is published empty; a clean stop publishes the empty room and `sensing:
stopped` before `stopped`. `availability` says whether the daemon is connected,
`sensing` whether it sees: Home Assistant's room entities need both.

Order: at most `max_inflight` events are with paho at a time, always the
oldest unacknowledged ones. paho keeps unacknowledged QoS 1 messages across a
reconnect and re-sends them first; after a reconnect the worker hands over no
new event until those re-sent ones are acknowledged, so a new event can never
overtake an old one. After a restart everything still spooled is sent again
from the oldest. Delivery is at least once: an event whose PUBACK was lost in
an outage or a crash is sent twice, with the same `seq`; subscribers drop
duplicates by `seq`, which never goes back (mqtt/spool.py).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt

from emotion_edge.device.daemon.control import DetectionSwitch
from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.daemon.sensing import SensingState
from emotion_edge.device.host import THERMAL_ROOT, cpu_temperature_c
from emotion_edge.device.mqtt import inbox
from emotion_edge.device.mqtt.config import MqttConfig, Topics, client_id_for
from emotion_edge.device.mqtt.connection import (
    BrokerConnection,
    LinkCounts,
    ProbingClient,
    describe_refusal,
    make_client,
)
from emotion_edge.device.mqtt.delivery import Delivery
from emotion_edge.device.mqtt.events import EventBuilder
from emotion_edge.device.mqtt.ha_discovery import discovery_messages, status_topic
from emotion_edge.device.mqtt.inbox import PublisherCounters
from emotion_edge.device.mqtt.retained import RetainedRecord, retire_stale
from emotion_edge.device.mqtt.status import RoomPublication, publish_stopped, stats_payload
from emotion_edge.device.pipeline import FrameReading
from emotion_edge.device.room import RoomState, room_state
from emotion_edge.device.statefile import StateFile

log = logging.getLogger(__name__)

POLL_S = 0.5  # the worker's longest sleep: bounds how late a due stats or state message can be
STOPPED_ACK_TIMEOUT_S = 1.0
EXTRA_INFLIGHT = 8  # paho's window also carries availability, state and stats messages besides the events
HANDED_OVER = (mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS, mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN)  # paho keeps both


class MqttPublisher:
    def __init__(self, config: MqttConfig, device_id: str, labels: tuple[str, ...], model_sha256: Callable[[], str],
                 stats_source: Callable[[], dict[str, Any]] | None = None, live: LiveState | None = None,
                 switch: DetectionSwitch | None = None, retained_store: StateFile | None = None,
                 configuration_url: str | None = None, thermal_root: Path = THERMAL_ROOT):
        self.config = config
        self.device_id = device_id
        self.labels = labels
        self.model_sha256 = model_sha256  # a callable: the daemon can reload its model while running
        self.topics = Topics.for_device(device_id, config.topic_prefix)
        self.connection = BrokerConnection.from_config(config)  # reads the password now: a bad setting stops start-up
        self.client_id = client_id_for(config, device_id)
        self.builder = EventBuilder(labels, config.update_min_interval_s, config.update_refresh_s)
        self.counters = PublisherCounters()
        self.state_text = "connecting"
        self._stats_source = stats_source
        self._live = live
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._last_problem: str | None = None
        self._room_key: tuple | None = None
        self._sensing_seen: SensingState = "starting"  # the camera loop's side of `_sensing`
        # The detection switch the command topic sets (None: no switch entity, commands ignored).
        self.switch = switch
        self._retained_store = retained_store if retained_store is not None else StateFile(None)
        self._configuration_url = configuration_url
        self._thermal_root = thermal_root  # where the stats' cpu_temp_c is read (doctor reads the same)
        self._client: ProbingClient | None = None
        self._thread: threading.Thread | None = None
        # Owned by the worker thread only:
        self.delivery = Delivery(config.spool_path, config.spool_max_bytes, config.max_inflight, device_id, labels,
                                 self.counters, log, live)
        self._worker_fault = inbox.Fault("the publisher's worker", log)
        self._published = RoomPublication(self.topics, device_id, labels, config.state_min_interval_s)

    # --- life cycle (the daemon's main thread) ---

    def start(self) -> MqttPublisher:
        client = make_client(self.connection, self.client_id)  # first: a TLS file problem stops start-up cleanly
        self.delivery.open()
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        client.max_inflight_messages_set(self.config.max_inflight + EXTRA_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        self._set_state("connecting")
        log.info("mqtt: connecting to %s as %s", self.connection.address, self.client_id,
                 extra={"broker": self.connection.address, "client_id": self.client_id, "topics": self.topics.prefix,
                        "spooled": self.delivery.spool_stats.depth})
        # connect_async: the first attempt happens on paho's thread, so a broker that is down at boot
        # costs the camera loop nothing.
        client.connect_async(self.connection.host, self.connection.port, self.connection.keepalive_s)
        client.loop_start()
        self._thread = threading.Thread(target=self._work, name="mqtt-publisher", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Clean shutdown: end open tracks, deliver what the broker takes within `shutdown_flush_s`, then `stopped`.

        Whatever is not acknowledged by then stays spooled for the next start.
        """
        if self._client is None or self._stopping.is_set():
            return
        self._inbox.put(inbox.EventBatch(self.builder.finish("shutdown"), self.model_sha256()))
        self._inbox.put(inbox.STOP)
        if self._thread is not None:
            self._thread.join(self.config.shutdown_flush_s + 5.0)
        self._stopping.set()
        worker_done = self._thread is None or not self._thread.is_alive()  # else a hung disk holds the spool
        client = self._client
        if self._connected.is_set():
            publish_stopped(client, self.topics, self.device_id, self.labels)  # the room empty, before `stopped`
            info = client.publish(self.topics.availability, "stopped", qos=1, retain=True)
            try:
                info.wait_for_publish(STOPPED_ACK_TIMEOUT_S)
            except (RuntimeError, ValueError):  # the connection dropped meanwhile: the will says offline instead
                pass
            # The broker acknowledges in order: the PUBACKs of events sent before `stopped` are in by now.
            # Applying them spares the next start re-sending events that did arrive.
            if worker_done:
                self.delivery.apply_acks([item.mid for item in self._drain(0.0) if isinstance(item, inbox.Acked)])
        client.disconnect()  # a clean DISCONNECT: the broker discards the will
        client.loop_stop()
        if worker_done:
            self.delivery.close()
        self._set_state("stopped")
        log.info("mqtt: stopped", extra={"spooled": self.delivery.spool_stats.depth,
                                         "delivered": self.counters.delivered})

    # --- the camera loop's side ---

    def handle_reading(self, reading: FrameReading) -> None:
        """A reading handler for the camera loop: cheap, never blocks (the queue is unbounded; events are few)."""
        if self._sensing_seen != "sensing":  # a processed frame is sensing, whoever feeds readings in
            self.sensing_changed("sensing")
        events = self.builder.observe(reading)
        if events:
            self._inbox.put(inbox.EventBatch(events, self.model_sha256()))
        room = self._room_of(reading)
        key = (room.faces, room.dominant, tuple(room.counts.values()))
        if key != self._room_key:
            self._room_key = key
            self._inbox.put(inbox.RoomItem(room))

    def sensing_changed(self, state: SensingState) -> None:
        """A sensing listener for the camera loop (its thread): a device that stops seeing ends its open tracks
        and shows the room empty; `sensing` itself is published in order after those events."""
        self._sensing_seen = state
        if state in ("paused", "camera_down"):
            events = self.builder.finish("paused" if state == "paused" else "camera_lost")
            if events:
                self._inbox.put(inbox.EventBatch(events, self.model_sha256()))
        if state != "sensing":
            self._room_key = None
            self._inbox.put(inbox.RoomItem(room_state(None, self.labels)))
        self._inbox.put(inbox.SensingItem(state))

    def detection_changed(self, enabled: bool) -> None:
        """A detection-switch listener (any thread): the switch's retained state follows it at once."""
        if self._client is not None and self._connected.is_set():
            self._client.publish(self.topics.detection, "ON" if enabled else "OFF", qos=1, retain=True)

    def _room_of(self, reading: FrameReading) -> RoomState:
        """`reading`'s room state: the live state's (updated before the handlers run), else computed here."""
        snapshot = self._live.snapshot() if self._live is not None else None
        if snapshot is not None and snapshot.reading is reading and snapshot.room is not None:
            return snapshot.room
        return room_state(reading, self.labels)

    @property
    def link_counts(self) -> LinkCounts:
        """Connection attempts and TCP probes so far: how hard the device tried a broker that was away."""
        return self._client.counts if self._client is not None else LinkCounts()

    def stats(self) -> dict[str, Any]:
        """A stats provider for the camera loop: the MQTT link and the spool."""
        spool = self.delivery.spool_stats
        link = self.link_counts
        return {
            "mqtt": {"state": self.state_text, "connects": self.counters.connects, "refused": self.counters.refused,
                     "attempts": link.attempts, "probes": link.probes,
                     "events": self.counters.events, "delivered": self.counters.delivered,
                     "inflight": len(self.delivery.inflight), "spool_errors": self.counters.spool_errors},
            "spool": {"depth": self.delivery.depth, "bytes": spool.bytes, "dropped": spool.dropped,
                      "pending_dropped": self.counters.pending_dropped},
        }

    # --- paho's thread ---

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: mqtt.ReasonCode,
                    properties: Any) -> None:
        if reason.is_failure:
            self.counters.refused += 1
            self._problem(logging.ERROR, describe_refusal(reason, self.connection), reason=str(reason))
            return
        client.publish(self.topics.availability, "online", qos=1, retain=True)
        if self.switch is not None:
            client.publish(self.topics.detection, "ON" if self.switch.enabled else "OFF", qos=1, retain=True)
            client.subscribe(self.topics.detection_set, qos=1)
        if self.config.homeassistant.enabled:
            client.subscribe(status_topic(self.config.homeassistant), qos=1)
            self._publish_discovery(client)
        self._retire_stale(client)
        self.counters.connects += 1
        self._last_problem = None
        self._connected.set()
        self._set_state("connected")
        log.info("mqtt: connected to %s", self.connection.address,
                 extra={"broker": self.connection.address, "connects": self.counters.connects})
        self._inbox.put(inbox.CONNECTED)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._problem(logging.WARNING, f"cannot connect to {self.connection.address} (broker down, network or TLS "
                                       f"handshake failed); retrying every {self.config.reconnect_min_s:g}-"
                                       f"{self.config.reconnect_max_s:g} s, events are spooled meanwhile")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                       reason: mqtt.ReasonCode, properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stopping.is_set():
            self._problem(logging.WARNING, f"lost the connection to {self.connection.address} ({reason}); "
                                           "reconnecting, events are spooled meanwhile", reason=str(reason))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: mqtt.ReasonCode,
                    properties: Any) -> None:
        self._inbox.put(inbox.Acked(mid))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topics.detection_set and self.switch is not None:
            command = message.payload.decode("utf-8", errors="replace").strip().upper()
            if command in ("ON", "OFF"):
                self.switch.set(command == "ON", by=f"mqtt {message.topic}")
            else:
                log.warning("mqtt: ignored %r on %s: the detection switch takes ON or OFF", command[:40],
                            message.topic, extra={"topic": message.topic})
        elif (self.config.homeassistant.enabled and message.topic == status_topic(self.config.homeassistant)
              and message.payload == b"online"):
            log.info("mqtt: Home Assistant came online; re-sending discovery", extra={"topic": message.topic})
            self._publish_discovery(client)

    def _discovery_messages(self) -> list[tuple[str, dict[str, Any]]]:
        return discovery_messages(self.config.homeassistant, self.topics, self.device_id, self.labels,
                                  configuration_url=self._configuration_url, switch=self.switch is not None,
                                  stats_interval_s=self.config.stats_interval_s)

    def _publish_discovery(self, client: mqtt.Client) -> None:
        for topic, config in self._discovery_messages():
            client.publish(topic, json.dumps(config), qos=1, retain=True)

    def _retire_stale(self, client: mqtt.Client) -> None:
        """Clear what an earlier run left retained that this one no longer publishes (see retained.py)."""
        discovery = [t for t, _ in self._discovery_messages()] if self.config.homeassistant.enabled else []
        device = [t for t in self.topics.retained if t != self.topics.detection or self.switch is not None]
        retire_stale(client, self._retained_store, RetainedRecord(tuple(discovery), tuple(device)))

    def _problem(self, level: int, text: str, **extra: Any) -> None:
        """Log a connection problem once, not on every retry; the live state shows it until it clears."""
        self._set_state(text)
        if text != self._last_problem:
            self._last_problem = text
            log.log(level, "mqtt: %s", text, extra={"broker": self.connection.address, **extra})

    def _set_state(self, text: str) -> None:
        self.state_text = text
        if self._live is not None:
            self._live.update(mqtt=text)

    # --- the worker thread ---

    def _work(self) -> None:
        next_stats = time.monotonic() + self.config.stats_interval_s
        stopping = False
        while not stopping:
            now = time.monotonic()
            wait = min(POLL_S, max(next_stats - now, 0.0), self._published.due_in(now))
            stopping = self._guarded_handle(self._drain(wait))
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.config.stats_interval_s
                self._publish_stats()
        self._flush(time.monotonic() + self.config.shutdown_flush_s)

    def _drain(self, timeout: float) -> list[object]:
        try:
            items = [self._inbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                return items

    def _guarded_handle(self, items: list[object]) -> bool:
        """`_handle`, surviving anything: a dead worker would leave stats saying `connected` and send nothing more."""
        try:
            stop = self._handle(items)
        except Exception as exc:  # noqa: BLE001 - logged once; the next round retries from the spool's state
            self._worker_fault.failed(exc)
            self.delivery.after_failure()
            return any(item is inbox.STOP for item in items)
        self._worker_fault.succeeded()
        return stop

    def _handle(self, items: list[object]) -> bool:
        """Spool new events, apply acks, publish what is due; True once a stop was asked for."""
        stop = False
        acked = []
        for item in items:
            if isinstance(item, inbox.EventBatch):
                self.delivery.add(item.events, item.model_sha256)
            elif isinstance(item, inbox.Acked):
                acked.append(item.mid)
            elif isinstance(item, inbox.RoomItem):
                self._published.room_changed(item.room)
            elif isinstance(item, inbox.SensingItem):
                self._published.sensing_changed(item.state)
            elif item is inbox.CONNECTED:
                self.delivery.reconnected()
                self._published.reconnected()
            elif item is inbox.STOP:
                stop = True
        self.delivery.spool_pending()
        self.delivery.apply_acks(acked)
        if self._connected.is_set() and self._client is not None:
            self.delivery.pump(self._send_event)  # first: a face's `end` reaches subscribers before `sensing` off
            self._published.publish_due(self._client)
        return stop

    def _send_event(self, seq: int, payload: bytes) -> int | None:
        """Hand one spooled event to paho: its mid, or None when paho refused it (the delivery retries)."""
        info = self._client.publish(self.topics.events, payload, qos=self.config.qos, retain=False)
        if info.rc not in HANDED_OVER:
            log.warning("mqtt: paho refused event %d (%s); will retry", seq, mqtt.error_string(info.rc),
                        extra={"seq": seq})
            return None
        return info.mid

    def _publish_stats(self) -> None:
        if not self._connected.is_set() or self._client is None:
            return  # stats are a snapshot, not history: nothing to catch up on later
        try:
            stats = self._stats_source() if self._stats_source is not None else self.stats()
        except Exception as exc:  # noqa: BLE001 - a broken provider must not stop event delivery
            log.warning("mqtt: stats unavailable (%s)", exc)
            return
        payload = stats_payload(self.device_id, stats, self.model_sha256(), cpu_temperature_c(self._thermal_root))
        self._client.publish(self.topics.stats, payload, qos=0, retain=False)

    def _flush(self, deadline: float) -> None:
        """Spool what is left and deliver what the broker acknowledges before `deadline`."""
        self._guarded_handle([])
        while self._connected.is_set() and not self.delivery.settled and time.monotonic() < deadline:
            self._guarded_handle(self._drain(min(0.05, max(deadline - time.monotonic(), 0.0))))
