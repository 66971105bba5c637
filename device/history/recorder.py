"""The recorder behind `emotion-edge listen --record FILE`: a subscriber whose messages land in a RecordStore.

paho's thread only queues; one writer thread drains the queue in bounded batches (at most `batch_max`
messages or `batch_s` seconds), one transaction each, so the SD card sees a write every `batch_s` at most,
not one per message. `stop()` writes what is queued before returning: a SIGINT or SIGTERM loses nothing.
With a persistent session (`--client-id ... --persistent`) the broker queues what comes while the recorder is
away and delivers it on its return; the store ignores what it already holds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from emotion_edge.device.history.store import Message, RecordStore
from emotion_edge.device.mqtt.listen import Listener, Received

log = logging.getLogger(__name__)

RECORDED_KINDS = ("events", "state", "stats")


@dataclass
class RecorderCounters:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    ignored: int = 0
    batches: int = 0


class Recorder:
    """Listener -> queue -> writer thread -> RecordStore. start(), then stop() (flushes) or use it as a context."""

    def __init__(self, listener: Listener, store: RecordStore, batch_max: int = 500, batch_s: float = 1.0):
        self.listener = listener
        self.store = store
        self.batch_max = batch_max
        self.batch_s = batch_s
        self.counters = RecorderCounters()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="recorder-writer", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> Recorder:
        """Start writing, then subscribe; a broker that refuses (BrokerError) leaves nothing running."""
        self._writer.start()
        try:
            self.listener.start()
        except BaseException:
            self._stop.set()
            self._writer.join()
            raise
        return self

    def stop(self) -> None:
        self.listener.close()
        self._stop.set()
        self._writer.join()
        if self._error is not None:
            raise self._error

    @property
    def failed(self) -> BaseException | None:
        return self._error

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_batch(self) -> list[Message]:
        batch: list[Message] = []
        deadline = time.monotonic() + self.batch_s
        while len(batch) < self.batch_max:
            remaining = deadline - time.monotonic()
            try:
                received = self.listener.messages.get(timeout=max(remaining, 0.0)) if remaining > 0 \
                    else self.listener.messages.get_nowait()
            except queue.Empty:
                break
            message = _to_message(received)
            if message is not None:
                batch.append(message)
        return batch

    def _write_loop(self) -> None:
        try:
            while True:
                stopping = self._stop.is_set()
                batch = self._next_batch()
                if batch:
                    result = self.store.append(batch)
                    c = self.counters
                    c.received += len(batch)
                    c.inserted += result.inserted
                    c.duplicates += result.duplicates
                    c.ignored += result.ignored
                    c.batches += 1
                    log.debug("batch of %d: %d new, %d duplicates", len(batch), result.inserted, result.duplicates)
                elif stopping and self.listener.messages.empty():
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to stop()'s caller
            log.error("recording stopped: %s", exc)
            self._error = exc


def _to_message(received: Received) -> Message | None:
    if received.kind not in RECORDED_KINDS or not isinstance(received.payload, dict):
        return None  # availability and anything unparsable
    return Message(received.kind, received.payload, time.time())
