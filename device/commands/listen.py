"""`emotion-edge listen`: the argparse of the listener, its connection built from a config and options."""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from emotion_edge.device.errors import UsageError
from emotion_edge.device.mqtt.config import MqttConfig, MqttTlsConfig, device_prefix, read_password
from emotion_edge.device.mqtt.connection import BrokerConnection
from emotion_edge.device.mqtt.listen import TOPIC_KINDS, Listener, Received, subscriptions


def add_listen(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("listen", help="print a device's MQTT messages as they arrive, one JSON object per line",
                       description="Subscribe to emotion-edge topics (availability, events, state, stats, sensing, "
                                   "detection) and print each message as {\"topic\", \"retained\", \"payload\"}. "
                                   "Connection settings come from --config's [mqtt] section, then these options.")
    p.add_argument("--config", type=Path, help="daemon TOML config whose [mqtt] section (broker, TLS, login) applies")
    p.add_argument("--host", help="broker host (default: the config's, else localhost)")
    p.add_argument("--port", type=int, help="broker port (default: the config's, else 1883, 8883 with --tls)")
    p.add_argument("--device", default="+", help="device id to follow (default: + for every device)")
    p.add_argument("--prefix", help="topic prefix, overriding emotion-edge/<device>")
    p.add_argument("--only", action="append", choices=TOPIC_KINDS, help="only these topics (repeatable; default: all)")
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
    p.add_argument("--record", type=Path, metavar="FILE",
                   help="keep every event, state and stats message in this SQLite recording (appended, deduplicated; "
                        "README 'Recording and reports') instead of printing them")
    p.add_argument("--batch-s", type=float, default=1.0,
                   help="with --record: write at most every this many seconds, one transaction per batch (default 1)")
    p.add_argument("--export-csv", type=Path, metavar="DIR",
                   help="with --record: write the recording's tables as CSV files into DIR and exit (no broker)")
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
    if args.export_csv or args.record:
        return run_record(args)
    connection = connection_from_args(args)
    prefix = args.prefix or device_prefix(args.device)
    kinds = tuple(args.only) if args.only else TOPIC_KINDS
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


def run_record(args: argparse.Namespace) -> int:
    """`listen --record FILE`: the Recorder until interrupted (or --count/--timeout); `--export-csv DIR`: CSV out."""
    import logging
    import signal

    from emotion_edge.device.history.recorder import RECORDED_KINDS, Recorder
    from emotion_edge.device.history.store import RecordStore

    if args.record is None:
        raise UsageError("--export-csv needs --record FILE: the recording to export")
    if args.export_csv:
        store = RecordStore(args.record, readonly=True)
        try:
            for path in store.export_csv(args.export_csv):
                print(path)
        finally:
            store.close()
        return 0
    if args.batch_s <= 0:
        raise UsageError("--batch-s must be positive")
    log = logging.getLogger("emotion_edge.listen")
    connection = connection_from_args(args)
    prefix = args.prefix or device_prefix(args.device)
    kinds = tuple(k for k in (args.only or RECORDED_KINDS) if k in RECORDED_KINDS)
    if not kinds:
        raise UsageError(f"--record keeps {', '.join(RECORDED_KINDS)}: --only names none of them")
    store = RecordStore(args.record)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    listener = Listener(connection, subscriptions(prefix, kinds), args.client_id, args.persistent)
    recorder = Recorder(listener, store, batch_s=args.batch_s)
    try:
        recorder.start()
        print(f"recording {prefix}/{{{','.join(kinds)}}} from {connection.address} into {args.record}",
              file=sys.stderr, flush=True)
        deadline = args.timeout or None
        try:
            while not done.wait(0.5 if deadline is None else min(0.5, deadline)):
                if recorder.failed or (args.count and recorder.counters.received >= args.count):
                    break
                if deadline is not None:
                    deadline -= 0.5
                    if deadline <= 0:
                        break
        except KeyboardInterrupt:
            pass
        recorder.stop()
    finally:
        counts = store.counts()
        store.close()
    log.info("recording stopped: %s rows (%d duplicates ignored this run)", counts, recorder.counters.duplicates)
    return 0
