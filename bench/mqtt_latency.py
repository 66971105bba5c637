"""Capture-to-subscriber latency of emotion events through a real mosquitto on loopback, against a bare paho baseline.

Ours: the daemon in-process on examples/demo.mp4 (looped, paced at 30 fps,
`update_refresh_s` small so events come steadily); a subscriber takes each
event's arrival time minus the capture time it carries (`monotonic`, the
device's monotonic clock, which the subscriber shares on the same host). That
covers detection, classification, smoothing, the event builder, the spool
append (SQLite, synchronous=FULL: one fsync per batch), paho, the broker and
the subscriber's paho.

Baseline, same run, same broker: a bare paho client publishing QoS 1 messages
carrying their send time to the same kind of subscriber: the cost of MQTT
itself. Also printed: the spool's append cost on this disk, alone.

    python bench/mqtt_latency.py [--events 200] [--spool-dir DIR]

Needs mosquitto (Debian: apt-get install mosquitto); bench/broker.py runs it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker import Broker  # noqa: E402

from emotion_edge.device.config import CameraConfig, DaemonConfig, ModelConfig  # noqa: E402
from emotion_edge.device.daemon.app import attach_mqtt, build_daemon  # noqa: E402
from emotion_edge.device.model.metadata import packaged_model_path  # noqa: E402
from emotion_edge.device.mqtt.config import MqttConfig, Topics  # noqa: E402
from emotion_edge.device.mqtt.connection import BrokerConnection  # noqa: E402
from emotion_edge.device.mqtt.listen import Listener  # noqa: E402
from emotion_edge.device.mqtt.spool import Spool  # noqa: E402


def percentiles(values_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(values_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def baseline(port: int, count: int) -> list[float]:
    """Bare paho: publish QoS 1 with the send time inside, measure arrival at a subscriber."""
    listener = Listener(BrokerConnection("127.0.0.1", port), ["bench/baseline"]).start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    latencies = []
    for _ in range(count):
        client.publish("bench/baseline", json.dumps({"sent": time.monotonic()}), qos=1)
        message = listener.messages.get(timeout=10)
        latencies.append(1000 * (message.received_monotonic - message.payload["sent"]))
        time.sleep(0.02)  # about the spacing of events in the daemon run: no queueing in either
    client.disconnect()
    client.loop_stop()
    listener.close()
    return latencies


def daemon_events(port: int, count: int, spool: Path) -> tuple[list[float], list[float], dict]:
    """The real daemon: capture time carried in each event to its arrival at a subscriber, and to the handlers."""
    device = "bench"
    listener = Listener(BrokerConnection("127.0.0.1", port), [Topics.for_device(device).events]).start()
    config = DaemonConfig(
        device_id=device, camera=CameraConfig(source=str(ROOT / "examples" / "demo.mp4"), loop=True, fps=30.0),
        model=ModelConfig(path=packaged_model_path(), threads=1),
        mqtt=MqttConfig(enabled=True, host="127.0.0.1", port=port, spool_path=spool, update_min_interval_s=0.0,
                        update_refresh_s=0.02, stats_interval_s=3600.0),
    )
    daemon = build_daemon(config)
    pipeline_ms: dict[int, float] = {}  # frame index -> capture to the handlers (detect, classify, smooth)
    daemon.handlers.append(lambda r: pipeline_ms.__setitem__(r.frame_index, 1000 * (time.monotonic() - r.timestamp)))
    publisher = attach_mqtt(daemon)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    latencies, pipeline = [], []
    while len(latencies) < count:
        message = listener.messages.get(timeout=30)
        event = message.payload
        if event["reason"] != "shutdown":
            latencies.append(1000 * (message.received_monotonic - event["monotonic"]))
            pipeline.append(pipeline_ms[event["frame"]])
    stats = daemon.stats()
    daemon.stop()
    thread.join(10)
    publisher.close()
    listener.close()
    return latencies, pipeline, stats


def spool_append_ms(directory: Path, count: int) -> list[float]:
    spool = Spool(directory / "append-bench.db", max_bytes=16 << 20)
    payload = b"x" * 700  # about one event
    times = []
    for _ in range(count):
        started = time.perf_counter()
        spool.append([lambda seq: payload])
        times.append(1000 * (time.perf_counter() - started))
    spool.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200, help="events (and baseline messages) to time")
    parser.add_argument("--spool-dir", type=Path, help="where the spool lives (default: a temporary folder)")
    args = parser.parse_args()
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    workdir = Path(tempfile.mkdtemp(prefix="mqtt-bench-"))
    spool_dir = args.spool_dir or workdir
    try:
        with Broker(mosquitto, workdir / "broker") as broker:
            base = baseline(broker.port, args.events)
            ours, pipeline, stats = daemon_events(broker.port, args.events, spool_dir / "spool.db")
        append = spool_append_ms(spool_dir, args.events)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    (b_med, b_p95), (o_med, o_p95), (s_med, s_p95) = percentiles(base), percentiles(ours), percentiles(append)
    (p_med, p_p95), (m_med, m_p95) = percentiles(pipeline), percentiles([o - p for o, p in zip(ours, pipeline)])
    print(f"host: {platform.machine()}, {args.events} messages each, mosquitto on 127.0.0.1, spool in {spool_dir}")
    print("| path | median ms | p95 ms | median ratio | p95 ratio |\n|---|---|---|---|---|")
    print(f"| bare paho QoS 1 publish -> subscriber (baseline) | {b_med:.2f} | {b_p95:.2f} | 1.00 | 1.00 |")
    print(f"| frame capture -> event at subscriber (ours) | {o_med:.2f} | {o_p95:.2f} | "
          f"{o_med / b_med:.1f} | {o_p95 / b_p95:.1f} |")
    print(f"| ... of which capture -> handlers (detect, classify, smooth) | {p_med:.2f} | {p_p95:.2f} | "
          f"{p_med / b_med:.1f} | {p_p95 / b_p95:.1f} |")
    print(f"| ... of which handlers -> subscriber (events, spool, paho, broker) | {m_med:.2f} | {m_p95:.2f} | "
          f"{m_med / b_med:.1f} | {m_p95 / b_p95:.1f} |")
    print(f"| spool append of one event (SQLite WAL, synchronous=FULL) | {s_med:.2f} | {s_p95:.2f} | "
          f"{s_med / b_med:.1f} | {s_p95 / b_p95:.1f} |")
    stage = stats["stage_ms"]
    print(f"daemon per-frame stages (ms, moving average): capture {stage['capture']}, detect {stage['detect']}, "
          f"classify {stage['classify']}, publish handler {stage['publish']}; {stats['fps']} fps")


if __name__ == "__main__":
    main()
