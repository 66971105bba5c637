"""Recordings for bench/report.py and the report's tests: events as the daemon publishes them, written through
the recorder's own store. It lives in bench/ (which imports nothing from tests/); tests/helpers/history.py
loads it from here, so both use one generator."""

from __future__ import annotations

import random
from pathlib import Path

from emotion_edge.device.history.store import Message, RecordStore
from emotion_edge.device.mqtt.events import iso_utc

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
DAY_START = 1796601600.0  # 2026-12-07T00:00:00Z


def face(emotion: str) -> dict:
    probabilities = {label: (0.7 if label == emotion else 0.05) for label in LABELS}
    return {"emotion": emotion, "confidence": 0.7, "probabilities": probabilities,
            "box": {"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}}


def event(device: str, seq: int, unix: float, kind: str, track: int, age: float, before: str | None,
          after: str | None, reason: str | None = None) -> Message:
    reason = reason or {"new": "appeared", "update": "emotion_changed", "end": "left"}[kind]
    return Message("events", {
        "version": 1, "seq": seq, "type": kind, "reason": reason, "device_id": device, "track_id": track,
        "time": iso_utc(unix), "monotonic": unix - DAY_START, "frame": seq, "track_age_s": age,
        "before": face(before) if before else None,
        "after": {**face(after), **({"end_time": iso_utc(unix)} if kind == "end" else {})} if after else None,
        "model_sha256": "0" * 64}, unix)


def synthetic_day(path: Path, seconds: int = 86400, device: str = "bench-cam", seed: int = 7) -> int:
    """One event a second for `seconds`: faces come (up to 4), change emotion, refresh, leave. Returns the events."""
    rng = random.Random(seed)
    store = RecordStore(path)
    open_tracks: dict[int, tuple[float, str]] = {}  # track -> (start, emotion)
    next_track, batch = 1, []
    for second in range(seconds):
        unix, seq = DAY_START + second, second + 1
        roll, hour = rng.random(), second // 3600
        # The room's mood drifts through the day: every 4 hours another emotion is 6x as likely.
        weights = [6 if i == (hour // 4) % len(LABELS) else 1 for i in range(len(LABELS))]
        busy = 4 if 8 <= hour < 20 else 1  # more faces in the daytime
        if not open_tracks or (roll < 0.08 and len(open_tracks) < busy):
            emotion = rng.choices(LABELS, weights)[0]
            open_tracks[next_track] = (unix, emotion)
            batch.append(event(device, seq, unix, "new", next_track, 0.0, None, emotion))
            next_track += 1
        else:
            track = rng.choice(sorted(open_tracks))
            start, emotion = open_tracks[track]
            if roll < 0.16:
                del open_tracks[track]
                batch.append(event(device, seq, unix, "end", track, unix - start, emotion, emotion))  # `end` keeps `after`
            elif roll < 0.5:
                others = [label for label in LABELS if label != emotion]
                changed = rng.choices(others, [weights[LABELS.index(label)] for label in others])[0]
                open_tracks[track] = (start, changed)
                batch.append(event(device, seq, unix, "update", track, unix - start, emotion, changed))
            else:
                batch.append(event(device, seq, unix, "update", track, unix - start, emotion, emotion, "refresh"))
        if len(batch) >= 5000:
            store.append(batch)
            batch = []
    store.append(batch)
    store.close()
    return seconds
