"""A real Home Assistant for the tests: its pinned install, cached outside the clone, and one headless instance.

Home Assistant 2025.4 needs Python 3.13, newer than the project's venv may be, so it lives in its own venv made
with a Python 3.13 found on the machine (pyenv's, or `python3.13` on PATH), from the lock
tests/home_assistant/requirements.txt. The venv is cached under ~/.cache/emotion-edge/ (or $XDG_CACHE_HOME) by a
hash of the lock and the interpreter: the first run installs it (about 2 minutes, with uv), later runs and clean
clones on the same machine reuse it (under a second). Home Assistant starts with `--skip-pip`, so it never downloads at test time:
every requirement of the integrations it loads is in the lock.

The instance listens on 127.0.0.1 only, on a free port, with a minimal configuration; the test gets an admin's
access token through the onboarding API (the frontend's own first-run path) and adds the MQTT integration
through the config-flow REST API, as a user would in the UI.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from helpers.peers import require_python, terminate

HOMEASSISTANT_DIR = Path(__file__).resolve().parent.parent / "home_assistant"
REQUIREMENTS = HOMEASSISTANT_DIR / "requirements.txt"
VALIDATOR = HOMEASSISTANT_DIR / "validate_discovery.py"
PYTHON_VERSION = "3.13"
START_TIMEOUT_S = 180.0  # a cold start on a loaded 2-core machine writes its storage and compiles translations
STOP_TIMEOUT_S = 60.0
USER, PASSWORD = "emotion-edge", "emotion-edge-test"


@dataclass(frozen=True)
class HomeAssistantVenv:
    path: Path
    python: Path
    install_s: float | None  # None: an earlier run's install was reused
    ready_s: float  # this session's cost of having the venv: the install, or the check that it is there

    def describe(self) -> str:
        what = (f"installed in {self.install_s:.0f} s" if self.install_s is not None
                else f"reused (cached install, {self.ready_s:.2f} s)")
        return f"Home Assistant venv {what}: {self.path}"


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emotion-edge"


def venv_path(python: str, requirements: Path = REQUIREMENTS) -> Path:
    """One venv per lock and interpreter: a changed lock or Python gets a fresh venv, never a patched one."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], check=True, capture_output=True,
                             text=True).stdout.strip()
    digest = hashlib.sha256(requirements.read_bytes() + version.encode()).hexdigest()[:16]
    return cache_root() / f"homeassistant-{digest}"


def ensure_venv(python: str, requirements: Path = REQUIREMENTS) -> HomeAssistantVenv:
    """The cached venv, installed first where it is missing or incomplete. A lock file serialises concurrent
    sessions; `.complete` is written last, so an interrupted install is redone, not trusted."""
    started = time.monotonic()
    path = venv_path(python, requirements)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        complete = path / ".complete"
        install_s = None
        if not complete.exists():
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run([python, "-m", "venv", str(path)], check=True, capture_output=True)
            log = path / "install.log"
            with open(log, "w") as out:
                result = _install(path, requirements, out)
            if result.returncode != 0:
                raise RuntimeError(f"installing Home Assistant from {requirements} failed (exit {result.returncode}); "
                                   f"pip's output is in {log}")
            install_s = time.monotonic() - started
            complete.write_text(json.dumps({"requirements": str(requirements), "install_s": round(install_s, 1)}))
    return HomeAssistantVenv(path, path / "bin" / "python", install_s, time.monotonic() - started)


def _install(path: Path, requirements: Path, out) -> subprocess.CompletedProcess:
    """The lock into the venv with uv, at the version the lock pins (Home Assistant depends on it): its parallel
    downloads make a cold install about twice as fast as pip's (2 min against 4.7 on the 2-core workstation)."""
    uv_pin = next(line.strip() for line in requirements.read_text().splitlines() if line.startswith("uv=="))
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", uv_pin]
    result = subprocess.run(pip, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        return result
    return subprocess.run([str(path / "bin" / "uv"), "pip", "install", "--python", str(path / "bin" / "python"),
                           "-r", str(requirements)], stdout=out, stderr=subprocess.STDOUT)


def home_assistant_python() -> str:
    """A Python 3.13 for Home Assistant: skipped without one, failed in CI (EMOTION_EDGE_REQUIRE_PEERS=1)."""
    return require_python(PYTHON_VERSION)


def validate_discovery(venv: HomeAssistantVenv, discovery_prefix: str,
                       messages: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Home Assistant's own verdict on each discovery config (tests/home_assistant/validate_discovery.py)."""
    request = json.dumps({"discovery_prefix": discovery_prefix, "messages": messages})
    result = subprocess.run([str(venv.python), str(VALIDATOR)], input=request, capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{VALIDATOR.name} failed (exit {result.returncode}): {result.stderr[-3000:]}")
    return [json.loads(line) for line in result.stdout.splitlines()]


CONFIGURATION = """\
# Only what the tests use: the REST and websocket APIs, the frontend (for the device page's screenshot) and its
# dependencies (auth, onboarding, config: the config-flow and registry APIs). MQTT comes as a config entry.
homeassistant:
  name: emotion-edge test
  unit_system: metric
  time_zone: UTC
  country: DE
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
websocket_api:
frontend:
config:
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
"""


@dataclass
class HomeAssistant:
    """One Home Assistant process on 127.0.0.1:`port` with its config in `config_dir`; `token` is an admin's."""

    venv: HomeAssistantVenv
    config_dir: Path
    port: int
    process: subprocess.Popen | None = None
    tokens: dict[str, Any] = field(default_factory=dict)  # the onboarding user's, as /auth/token gave them
    token: str = ""  # tokens["access_token"]
    start_s: float = 0.0
    _output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.config_dir / "home-assistant.log"

    def start(self) -> HomeAssistant:
        started = time.monotonic()
        self._write_config()
        self.process = subprocess.Popen(
            [str(self.venv.python), "-m", "homeassistant", "--config", str(self.config_dir), "--skip-pip",
             "--log-file", str(self.log_path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        # Drain its console, so a chatty start can never block on a full pipe; kept for error messages.
        threading.Thread(target=self._drain, daemon=True).start()
        self._wait_running()
        self._onboard()
        self.start_s = time.monotonic() - started
        return self

    def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._output.append(line)
            del self._output[:-200]

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        # Onboarding's core_config step would start Met, Radio Browser and other integrations that download their
        # requirements and call out to the internet; marked done here, the rest of onboarding runs over its API.
        storage = self.config_dir / ".storage"
        storage.mkdir(exist_ok=True)
        (storage / "onboarding").write_text(json.dumps({
            "version": 4, "minor_version": 1, "key": "onboarding", "data": {"done": ["core_config", "analytics"]}}))

    def describe(self) -> str:
        log = self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""
        return f"Home Assistant console: {''.join(self._output)[-3000:]}\nlog: {log}"

    def _wait_running(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Home Assistant exited with {self.process.returncode}; {self.describe()}")
            try:
                if httpx.get(f"{self.url}/api/onboarding", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"Home Assistant did not answer on {self.url} within {START_TIMEOUT_S:g} s; "
                           f"{self.describe()}")

    def _onboard(self) -> None:
        """The frontend's first run, over the API: an admin user, an access token, onboarding finished."""
        client_id = f"{self.url}/"
        response = httpx.post(f"{self.url}/api/onboarding/users", timeout=30, json={
            "client_id": client_id, "name": "Test", "username": USER, "password": PASSWORD, "language": "en"})
        response.raise_for_status()
        tokens = httpx.post(f"{self.url}/auth/token", timeout=30, data={
            "grant_type": "authorization_code", "code": response.json()["auth_code"], "client_id": client_id})
        tokens.raise_for_status()
        self.tokens = tokens.json()
        self.token = self.tokens["access_token"]
        self.post("/api/onboarding/integration", {"client_id": client_id, "redirect_uri": f"{client_id}?auth_callback=1"})
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.get("/api/config")["state"] != "RUNNING":
            assert time.monotonic() < deadline, f"Home Assistant did not reach RUNNING; {self.describe()}"
            time.sleep(0.2)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", headers=self.headers(), timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{self.url}{path}", headers=self.headers(), json=body, timeout=30)
        if response.status_code >= 400:
            raise AssertionError(f"POST {path} -> {response.status_code}: {response.text}")
        return response.json()

    def post_text(self, path: str, body: dict[str, Any]) -> str:
        response = httpx.post(f"{self.url}{path}", headers=self.headers(), json=body, timeout=30)
        if response.status_code >= 400:
            raise AssertionError(f"POST {path} -> {response.status_code}: {response.text}")
        return response.text

    def add_mqtt(self, broker_port: int) -> dict[str, Any]:
        """The MQTT integration, set up as in the UI (Settings > Devices > Add integration > MQTT): the config
        flow's broker form, answered with the test mosquitto. Discovery is on with prefix `homeassistant`."""
        flow = self.post("/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False})
        assert flow.get("type") == "form" and flow.get("step_id") == "broker", flow
        result = self.post(f"/api/config/config_entries/flow/{flow['flow_id']}",
                           {"broker": "127.0.0.1", "port": broker_port})
        assert result.get("type") == "create_entry", result
        return result["result"]

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process, STOP_TIMEOUT_S)
        self.process = None

    def __enter__(self) -> HomeAssistant:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Websocket:
    """Home Assistant's websocket API (websocket-client, which selenium brings): commands with results, and
    every state_changed event collected from the moment it connects."""

    def __init__(self, ha: HomeAssistant):
        import websocket

        self.socket = websocket.create_connection(f"ws://127.0.0.1:{ha.port}/api/websocket", timeout=30)
        assert json.loads(self.socket.recv())["type"] == "auth_required"
        self.socket.send(json.dumps({"type": "auth", "access_token": ha.token}))
        assert json.loads(self.socket.recv())["type"] == "auth_ok"
        self.socket.settimeout(None)  # the reader waits as long as it takes; close() ends it
        self._next_id = 1
        self._lock = threading.Lock()
        self._results: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition(self._lock)
        self.state_changes: list[dict[str, Any]] = []  # event data: entity_id, old_state, new_state
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="ha-websocket", daemon=True)
        self._reader.start()
        self.command("subscribe_events", event_type="state_changed")

    def _read(self) -> None:
        while not self._closed:
            try:
                message = json.loads(self.socket.recv())
            except Exception:  # closed: the reader ends with the socket
                return
            with self._arrived:
                if message.get("type") == "event":
                    self.state_changes.append(message["event"]["data"])
                else:
                    self._results[message["id"]] = message
                self._arrived.notify_all()

    def command(self, kind: str, **fields: Any) -> Any:
        with self._arrived:
            ident = self._next_id
            self._next_id += 1
        self.socket.send(json.dumps({"id": ident, "type": kind, **fields}))
        with self._arrived:
            if not self._arrived.wait_for(lambda: ident in self._results, timeout=30):
                raise AssertionError(f"no answer to websocket command {kind}")
            message = self._results.pop(ident)
        if not message.get("success", False):
            raise AssertionError(f"websocket command {kind} failed: {message}")
        return message.get("result")

    def changes(self, entity_id: str) -> list[dict[str, Any]]:
        """The new states an entity went through, oldest first (None: removed)."""
        with self._lock:
            return [c["new_state"] for c in self.state_changes if c["entity_id"] == entity_id]

    def close(self) -> None:
        self._closed = True
        self.socket.close()

