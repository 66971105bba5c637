"""A spool disk that fills up during a broker outage, against a real mosquitto and a genuinely full spool.

Two ways to fill it, both real: SQLite's own `max_page_count` on the spool's connection (portable, any user),
and a small tmpfs that a filler file fills (root only: the case the issue saw, where even deleting delivered
events fails because the write-ahead log cannot grow). Either way the publisher must survive, log each fault
once, count what it dropped, and deliver again by itself once space returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
from helpers.mosquitto import Mosquitto
from helpers.mqtt_support import LABELS, MODEL_SHA, face, reading
from helpers.peers import free_port, require_binary, require_module, wait_until
from test_mqtt_broker import DEVICE, TOPICS, first_occurrences, listen, mqtt_config

from emotion_edge.device.mqtt.listen import subscriptions
from emotion_edge.device.mqtt.publisher import MqttPublisher

pytestmark = pytest.mark.peer

require_module("jsonschema")


class PageCap:
    """SQLite's max_page_count on the publisher's spool connection: the database cannot grow past its size."""

    def __init__(self, tmp_path: Path):
        self.directory = tmp_path / "spool"

    def fill(self, publisher: MqttPublisher) -> None:
        db = publisher.delivery.spool._db  # the spool's own connection: the cap is per connection
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")

    def free(self, publisher: MqttPublisher) -> None:
        publisher.delivery.spool._db.execute("PRAGMA max_page_count = 1073741823")

    def close(self) -> None:
        pass


class FullTmpfs:
    """A 2 MiB tmpfs holding the spool, filled to the last block by a filler file."""

    def __init__(self, tmp_path: Path):
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root; the max_page_count variant covers other users")
        self.directory = tmp_path / "disk"
        self.directory.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(self.directory)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()})")
        self.filler = self.directory / "filler"

    def fill(self, publisher: MqttPublisher) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (65536, 4096, 1):  # big blocks, then whatever is left
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)

    def free(self, publisher: MqttPublisher) -> None:
        self.filler.unlink()

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.directory)], capture_output=True)


@pytest.fixture(params=[PageCap, FullTmpfs], ids=["max_page_count", "tmpfs"])
def disk(request, tmp_path) -> Iterator[PageCap | FullTmpfs]:
    made = request.param(tmp_path)
    yield made
    made.close()


class Faces:
    """Feeds the publisher one face that appears and leaves per cycle: two events (new, end) each."""

    def __init__(self, publisher: MqttPublisher):
        self.publisher = publisher
        self.track = 0
        self.events = 0

    def cycles(self, count: int) -> None:
        for _ in range(count):
            self.track += 1
            self.publisher.handle_reading(reading(2 * self.track, time.monotonic(),
                                                  (face(self.track, "happy", is_new=True),)))
            self.publisher.handle_reading(reading(2 * self.track + 1, time.monotonic(), (), ended=(self.track,)))
            self.events += 2


def test_a_full_spool_disk_is_survived_logged_once_counted_and_delivery_resumes(disk, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="emotion_edge")
    mosquitto = require_binary("mosquitto", "mosquitto")
    with Mosquitto(mosquitto, tmp_path / "broker", free_port(), persistence=True) as broker:
        inbox = listen(broker.port, subscriptions(TOPICS.prefix), client_id="test-logger", persistent=True)
        config = mqtt_config(broker.port, tmp_path, spool_path=disk.directory / "spool.db")
        publisher = MqttPublisher(config, DEVICE, LABELS, lambda: MODEL_SHA).start()
        faces = Faces(publisher)
        stats = publisher.stats
        try:
            faces.cycles(2)
            wait_until(lambda: publisher.counters.delivered >= 4, "the first events delivered")
            before_outage = faces.events
            broker.stop()
            wait_until(lambda: stats()["mqtt"]["state"] != "connected", "the outage noticed")
            faces.cycles(20)
            wait_until(lambda: publisher.counters.events == faces.events, "the outage's events spooled")
            disk.fill(publisher)
            # The disk stays full while events keep coming: long enough for many retries.
            for _ in range(30):
                faces.cycles(10)
                time.sleep(0.1)
            wait_until(lambda: stats()["spool"]["dropped"] + stats()["mqtt"]["spool_errors"] > 0,
                       "the full disk to show in stats", describe=lambda: str(stats()))
            wait_until(lambda: publisher.counters.events + publisher.counters.pending_dropped == faces.events
                       or publisher.delivery.append_fault.failures >= 3, "appends retried on the full disk")
            broker.start()
            wait_until(lambda: publisher.counters.connects >= 2, "the reconnect")
            time.sleep(1.5)  # acks arrive while the disk is still full
            before_free = faces.events
            disk.free(publisher)
            faces.cycles(3)
            wait_until(lambda: publisher.counters.events + publisher.counters.pending_dropped == faces.events
                       and stats()["spool"]["depth"] == 0 and not publisher.delivery.inflight
                       and publisher.delivery.spool_stats.depth == 0,  # delivered events deleted from the file too
                       "every event delivered or dropped", timeout=60, describe=lambda: str(stats()) + str([(p.name, p.stat().st_size) for p in disk.directory.iterdir()]) + str(os.statvfs(disk.directory).f_bavail))
            assert publisher._thread.is_alive()
        finally:
            publisher.close()
        last_seq = publisher.counters.events
        inbox.wait(lambda i: last_seq in {e["seq"] for e in i.events()}, "the events sent after space returned")
        inbox.listener.close()

    received = [e["seq"] for e in first_occurrences(inbox.events())]
    final = publisher.stats()["spool"]
    assert received == sorted(received)  # in order
    missing = set(range(1, last_seq + 1)) - set(received)
    assert len(missing) == final["dropped"]  # every gap is a counted drop, and nothing else is lost
    assert publisher.counters.events + final["pending_dropped"] == faces.events
    # Bounded loss, not everything: of the events made while the broker was away (most of them while the disk was
    # full), the newest that fit in the full spool survive. How many fit depends on the pages the file had when it
    # filled, so the check is that some did, and that every event made after space returned arrived.
    at_risk = before_free - before_outage
    assert final["dropped"] + final["pending_dropped"] < at_risk
    assert set(range(before_free + 1, last_seq + 1)) <= set(received)
    # Each fault: one error with its cause, then one line when it clears, never one per retry.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.endswith("mqtt.publisher")]
    recoveries = [r for r in caplog.records if "works again" in r.getMessage()]
    assert len(errors) <= 2 and len(recoveries) == len(errors), [r.getMessage() for r in errors + recoveries]
    assert all("full" in r.getMessage() or "I/O" in r.getMessage() for r in errors), [r.getMessage() for r in errors]
    assert publisher.counters.spool_errors >= len(errors)
