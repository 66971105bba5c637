"""Analysis outputs (annotated image, face thumbnails) kept for a while so the JSON can link to them.

Bounded in bytes and in time: a Pi has little memory, and results are for the client that just asked.
Entries are keyed by the image's content id, so the same image sent twice shares one entry.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class _Entry:
    expires: float
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


class ResultsCache:
    """Thread-safe: analyses store from worker threads, requests read from the server's event loop."""

    def __init__(self, max_bytes: int, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently stored first
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, key: str, name: str, data: bytes) -> bool:
        """Store one file of a result; False when it alone exceeds the cache (the caller inlines it instead)."""
        with self._lock:
            now = self.clock()
            entry = self._entries.pop(key, None) or _Entry(now + self.ttl_s)
            self._entries[key] = entry
            entry.expires = now + self.ttl_s
            self._bytes -= len(entry.files.pop(name, b""))
            if entry.size + len(data) > self.max_bytes:  # this result alone would overflow the cache
                return False
            entry.files[name] = data
            self._bytes += len(data)
            self._evict(now, keep=key)
            return True

    def get(self, key: str, name: str) -> bytes | None:
        with self._lock:
            self._evict(self.clock())
            entry = self._entries.get(key)
            return entry.files.get(name) if entry is not None else None

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def _evict(self, now: float, keep: str | None = None) -> None:
        for key in [k for k, e in self._entries.items() if e.expires <= now]:
            self._bytes -= self._entries.pop(key).size
        while self._bytes > self.max_bytes:
            oldest = next(k for k in self._entries if k != keep)
            self._bytes -= self._entries.pop(oldest).size
