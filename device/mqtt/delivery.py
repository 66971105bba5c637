"""At-least-once, in-order delivery of events through the spool, with no MQTT client code: the publisher's
worker thread drives it, and hands it a `send` function that gives one payload to the client.

What it owns: the events waiting in memory while the spool cannot be written (bounded, the oldest dropped and
counted), the spool itself, the in-flight window (client message id -> event seq), the acknowledgements the
spool could not delete yet, the pause after a reconnect while the client re-sends what was in flight, and the
`end` of every track a killed run left open: read from the spool when it opens (a spool that replaced a lost one
has them from the mark file: mqtt/spool.py) and queued before any new event.
Single-threaded: every method runs on the publisher's worker thread (`close` once that thread has ended).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from emotion_edge.device.daemon.live import LiveState
from emotion_edge.device.mqtt import inbox
from emotion_edge.device.mqtt.events import EmotionEvent, interrupted_end
from emotion_edge.device.mqtt.inbox import PublisherCounters
from emotion_edge.device.mqtt.spool import Spool, SpoolStats, TrackMark

# Events waiting in memory while the spool cannot be written: beyond this many the oldest are dropped (counted in
# stats.spool.pending_dropped). About 1 KB each: a few MB at most, hours of events from a busy room.
PENDING_MAX = 5000

# Hands one event's payload to the client: its message id, or None when the client refused it (retried later).
Send = Callable[[int, bytes], "int | None"]


@dataclass(frozen=True)
class Pending:
    """An event waiting for the spool: its payload given (seq, stream), and the track it opens, updates or ends."""

    payload: Callable[[int, str], dict[str, Any]]
    track: TrackMark


def pending_event(event: EmotionEvent, device_id: str, model_sha256: str, labels: tuple[str, ...]) -> Pending:
    return Pending(lambda seq, stream: event.to_payload(seq, stream, device_id, model_sha256, labels),
                   TrackMark(event.id, ends=event.type == "end"))


def pending_interrupted_end(last: dict[str, Any]) -> Pending:
    end = interrupted_end(last)
    return Pending(lambda seq, stream: {**end, "seq": seq, "stream": stream}, TrackMark(end["id"], ends=True))


class Delivery:
    def __init__(self, spool_path: Path, spool_max_bytes: int, max_inflight: int, device_id: str,
                 labels: tuple[str, ...], counters: PublisherCounters, log: logging.Logger,
                 live: LiveState | None = None):
        self.spool_path = spool_path
        self.spool_max_bytes = spool_max_bytes
        self.max_inflight = max_inflight
        self.device_id = device_id
        self.labels = labels
        self.counters = counters
        self.live = live
        self.spool: Spool | None = None
        self.spool_stats = SpoolStats(0, 0, 0, 0)
        self.append_fault = inbox.Fault(f"writing events to the spool {spool_path}", log)
        self.ack_fault = inbox.Fault(f"deleting delivered events from the spool {spool_path}", log)
        self.retry_at = 0.0  # no spool write or delete before this (monotonic) after a failure
        self.ack_backlog: list[int] = []  # seqs the broker acknowledged that the spool could not delete yet
        self.inflight: dict[int, int] = {}  # client message id -> event seq
        self.last_sent = 0  # highest seq handed to the client
        self.resuming = False
        self.unspooled: list[Pending] = []
        self.log = log

    def open(self) -> None:
        """Open the spool; queue an `end` (reason `crashed`) for every track the last run left open, first."""
        self.spool = Spool(self.spool_path, self.spool_max_bytes)
        self.spool_stats = self.spool.stats
        left_open = []
        for payload in self.spool.open_tracks():
            try:
                left_open.append(pending_interrupted_end(json.loads(payload)))
            except (ValueError, KeyError, TypeError) as exc:  # not ours to guess at: logged, left as it is
                self.log.error("mqtt: an open track in the spool %s is unreadable (%s)", self.spool_path, exc)
        if left_open:
            self.log.warning("mqtt: the last run stopped without ending %d track(s); ending them now (reason "
                             "'crashed')", len(left_open), extra={"tracks": [p.track.id for p in left_open]})
        self.unspooled = left_open + self.unspooled

    def close(self) -> None:
        if self.spool is not None:
            self.spool_stats = self.spool.stats
            self.spool.close()

    def add(self, events: list[EmotionEvent], model_sha256: str) -> None:
        self.unspooled += [pending_event(event, self.device_id, model_sha256, self.labels) for event in events]

    def reconnected(self) -> None:
        """The client re-sends what was in flight first; new events wait until it is acknowledged."""
        self.resuming = bool(self.inflight)

    def after_failure(self) -> None:
        """No spool write or delete for a while: the next round retries from the spool's state."""
        self.retry_at = time.monotonic() + inbox.SPOOL_RETRY_S

    @property
    def depth(self) -> int:
        """Events not yet delivered: spooled and not acknowledged, plus those waiting in memory."""
        return self.spool_stats.depth - len(self.ack_backlog) + len(self.unspooled)

    @property
    def settled(self) -> bool:
        """Nothing in flight and nothing spooled that is not already acknowledged."""
        return not self.inflight and self.spool_stats.depth <= len(self.ack_backlog)

    def spool_pending(self) -> None:
        if not self.unspooled or self.spool is None or time.monotonic() < self.retry_at:
            return
        last: dict[str, Any] = {}
        stream = self.spool.stream

        def encoder(pending: Pending) -> Callable[[int], bytes]:
            def encode(seq: int) -> bytes:
                last.clear()
                last.update(pending.payload(seq, stream))
                return json.dumps(last, separators=(",", ":")).encode()
            return encode

        try:
            self.spool.append([encoder(p) for p in self.unspooled], [p.track for p in self.unspooled])
        except Exception as exc:  # noqa: BLE001 - a disk error must not kill the thread; the events are kept
            self.counters.spool_errors += 1
            self.append_fault.failed(exc, spool=str(self.spool_path), pending=len(self.unspooled))
            self.after_failure()  # never sleep: acks and the broker go on meanwhile
            excess = len(self.unspooled) - PENDING_MAX
            if excess > 0:
                del self.unspooled[:excess]  # the oldest first, as the spool's own bound does
                self.counters.pending_dropped += excess
            self.spool_stats = self.spool.stats  # a full disk may have made the spool drop its oldest
            return
        self.append_fault.succeeded()
        self.counters.events += len(self.unspooled)
        self.unspooled = []
        self.spool_stats = self.spool.stats
        if self.live is not None:
            self.live.update(last_event=dict(last))

    def apply_acks(self, mids: list[int]) -> None:
        seqs = [self.inflight.pop(mid) for mid in mids if mid in self.inflight]  # other mids: state, stats, ...
        self.counters.delivered += len(seqs)
        self.ack_backlog += seqs
        if not self.ack_backlog or self.spool is None or time.monotonic() < self.retry_at:
            return
        try:
            self.spool.ack(self.ack_backlog)
        except Exception as exc:  # noqa: BLE001 - delivered events stay spooled (not re-sent: last_sent is past them)
            self.counters.spool_errors += 1
            self.ack_fault.failed(exc, spool=str(self.spool_path), backlog=len(self.ack_backlog))
            self.after_failure()
            return
        self.ack_fault.succeeded()
        self.ack_backlog = []
        self.spool_stats = self.spool.stats

    def pump(self, send: Send) -> None:
        """Hand the oldest unsent spooled events to `send`, up to the in-flight window."""
        if self.resuming:
            if self.inflight:
                return
            self.resuming = False
        room = self.max_inflight - len(self.inflight)
        if room <= 0 or self.spool is None:
            return
        for seq, payload in self.spool.peek(self.last_sent, room):
            mid = send(seq, payload)
            if mid is None:
                return
            self.inflight[mid] = seq
            self.last_sent = seq
