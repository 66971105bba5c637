"""A plain mosquitto on 127.0.0.1 for the benchmarks: anonymous, no persistence, a free port, stopped on exit.

The tests' broker (tests/helpers/mosquitto.py) also plays outages, passwords and TLS; a benchmark needs none
of that, and bench/ imports nothing from tests/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Broker:
    """`with Broker(binary, workdir) as broker:` a running mosquitto on `broker.port`."""

    def __init__(self, binary: str, workdir: Path, port: int | None = None):
        self.binary, self.workdir, self.port = binary, workdir, port or free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Broker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to user 'mosquitto', who cannot read the config
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen([self.binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: "
                                   f"{self.process.stderr.read().decode(errors='replace')}")
            if _accepts(self.port):
                return self
            time.sleep(0.02)
        self.__exit__()
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {START_TIMEOUT_S} s")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None
