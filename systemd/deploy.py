"""`emotion-edge deploy`: put a model on devices over ssh, confirm each runs it, roll back the ones that do not.

Per host: copy the model and its contract into `models/<sha256>.tflite` (temp
name, fsync, hash checked on the device), flip `current` atomically, tell the
daemon to reload, then wait until the daemon itself reports the new sha and
is processing frames. Any failure after the flip flips `current` back and
reloads, so a device is never left on a model it cannot run. The first host is
the canary: the others are only touched once it is healthy, then in parallel.

Every device-side step is `emotion-edge device-model ...` on the device
(emotion_edge.device.model.store), so nothing here builds shell logic.

The transport is the system `ssh` client rather than paramiko: it honours the
operator's ~/.ssh/config, agent, known_hosts, ProxyJump and hardware keys as
they are, adds no dependency, and BatchMode=yes makes a missing key fail at
once instead of prompting from a worker thread.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emotion_edge.device.errors import EmotionEdgeError
from emotion_edge.device.model.classifier import EmotionClassifier
from emotion_edge.device.model.metadata import ModelMetadata, sidecar_path
from emotion_edge.systemd.inventory import Host

log = logging.getLogger(__name__)

SSH_TIMEOUT_S = 60.0  # any single step but the health wait


class DeployError(EmotionEdgeError, RuntimeError):
    """A step failed; the message says which and why."""


# --- the model, checked before any device is touched ----------------------------------------------------------


@dataclass(frozen=True)
class ModelPackage:
    path: Path
    sha256: str
    model: bytes
    sidecar: bytes
    metadata: ModelMetadata

    @property
    def payload(self) -> bytes:
        """What `device-model receive` reads from stdin: the sidecar, then the model."""
        return self.sidecar + self.model


def _sample_accuracy_floor(recorded: float, n: int) -> float:
    """Lowest sample accuracy still consistent with `recorded`: 3 standard errors, at least 2 points."""
    return recorded - max(0.02, 3 * math.sqrt(max(recorded * (1 - recorded), 1e-6) / n))


def check_model(path: Path, data: str | None = None, sample: int = 500, seed: int = 0) -> ModelPackage:
    """Everything that can be checked on the workstation; raises DeployError naming the problem.

    - the contract and tensors (EmotionClassifier refuses a model that contradicts its sidecar);
    - the quantize parity gate recorded in the sidecar (a `.rejected` model never ships);
    - a parity sample: with `data`, accuracy on a sample of PrivateTest must match the accuracy the
      sidecar records for it; without, an invoke on random crops must give probability rows.
    """
    path = Path(path)
    try:
        classifier = EmotionClassifier(path)
    except (ValueError, OSError) as exc:
        raise DeployError(f"model check: {exc}") from None
    metrics = classifier.metadata.metrics
    if metrics.get("gate_passed") is False:
        raise DeployError(f"model check: {path} failed its parity gate in `emotion-edge quantize` ({sidecar_path(path)})")
    if data:
        _check_parity_sample(classifier, data, sample, seed)
    else:
        size = classifier.contract.input_size
        probs = classifier.classify(np.random.default_rng(seed).integers(0, 256, (8, size, size), dtype=np.uint8))
        if not np.all(np.isfinite(probs)) or not np.allclose(probs.sum(axis=1), 1.0, atol=0.05):
            raise DeployError(f"model check: {path} does not output probabilities (row sums {probs.sum(axis=1)})")
    return ModelPackage(path, classifier.sha256, path.read_bytes(), sidecar_path(path).read_bytes(), classifier.metadata)


def split_accuracy(classifier: EmotionClassifier, data: str, split: str = "test", sample: int = 0,
                   seed: int = 0) -> tuple[float, int]:
    """(accuracy, faces): the model's accuracy on one split of the data ("test": PrivateTest, "val": PublicTest),
    on all of it or, with `sample`, on that many faces drawn with `seed`. The one measurement the deploy's parity
    sample (PrivateTest, checking the file against its recorded figure) and retrain's baseline (PublicTest) share."""
    from emotion_edge.training.fer2013 import load_fer2013
    from emotion_edge.training.splits import make_splits

    test = make_splits(load_fer2013(data), classifier.labels)[split]
    if sample:
        pick = np.random.default_rng(seed).permutation(len(test))[:sample]
        images, labels = test.images[pick], test.labels[pick]
    else:
        images, labels = test.images, test.labels
    return float(np.mean(classifier.classify_many(images).argmax(1) == labels)), len(labels)


def _check_parity_sample(classifier: EmotionClassifier, data: str, sample: int, seed: int) -> None:
    recorded = classifier.metadata.metrics.get("int8_accuracy", {}).get("test")
    accuracy, faces = split_accuracy(classifier, data, "test", sample, seed)
    log.info("parity sample: %.2f%% on %d PrivateTest faces (recorded %s)", 100 * accuracy, faces,
             "none" if recorded is None else f"{100 * recorded:.2f}%")
    if recorded is not None and accuracy < _sample_accuracy_floor(float(recorded), faces):
        raise DeployError(f"model check: {accuracy:.2%} on a {faces}-face PrivateTest sample, but its contract "
                          f"records {recorded:.2%}; is this the model that was quantized, on this data?")


# --- one host over ssh -----------------------------------------------------------------------------------------


class Remote:
    """One device over ssh. As a context manager it holds one master connection that every step reuses
    (ControlMaster), so a deploy pays the ssh handshake once per host instead of once per step."""

    def __init__(self, host: Host):
        self.host = host
        self._control_dir: str | None = None

    def _base_argv(self, master: bool = False) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=10",
                "-p", str(self.host.port)]
        if self.host.identity_file:
            argv += ["-i", str(Path(self.host.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        for option in self.host.ssh_options:
            argv += ["-o", option]
        if self._control_dir:
            argv += ["-o", f"ControlPath={self._control_dir}/master"]
            # A step with no master socket (it failed to start) falls back to a connection of its own.
            argv += ["-M", "-N", "-f"] if master else ["-o", "ControlMaster=no"]
        return argv

    def ssh_argv(self, remote_command: str) -> list[str]:
        return self._base_argv() + [self.host.destination, "--", remote_command]

    def __enter__(self) -> Remote:
        self._control_dir = tempfile.mkdtemp(prefix="ee-ssh-")  # short: socket paths are limited to 107 bytes
        # -f backgrounds the master after authenticating; its output goes nowhere, or run() would wait on it.
        subprocess.run(self._base_argv(master=True) + [self.host.destination],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=SSH_TIMEOUT_S, check=False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._control_dir:
            subprocess.run(self._base_argv() + ["-O", "exit", self.host.destination], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=SSH_TIMEOUT_S, check=False)
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None

    def device_model_command(self, *args: str) -> str:
        return shlex.join([self.host.command, "device-model", "--config", self.host.config, *args])

    def run(self, remote_command: str, stdin: bytes | None = None, timeout: float = SSH_TIMEOUT_S) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.ssh_argv(remote_command), input=stdin if stdin is not None else b"",
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DeployError(f"`{remote_command}` did not finish within {timeout:g} s") from None

    def device_model(self, *args: str, stdin: bytes | None = None, timeout: float = SSH_TIMEOUT_S) -> dict[str, Any]:
        done = self.run(self.device_model_command(*args), stdin, timeout)
        lines = done.stdout.decode(errors="replace").strip().splitlines()
        try:
            result = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            result = None
        if not isinstance(result, dict):
            stderr = done.stderr.decode(errors="replace").strip().splitlines()
            raise DeployError(f"device-model {args[0]}: no answer from the device (ssh exit {done.returncode}: "
                              f"{stderr[-1] if stderr else 'no output'})")
        if done.returncode != 0 or "error" in result:
            raise DeployError(f"device-model {args[0]}: {result.get('error', f'exit status {done.returncode}')}")
        return result

    def reload(self) -> None:
        if not self.host.reload_command:
            return
        done = self.run(self.host.reload_command)
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()
            raise DeployError(f"reload command `{self.host.reload_command}` failed (exit {done.returncode}): {stderr}")


# --- the per-host procedure and the fleet --------------------------------------------------------------------


@dataclass
class HostResult:
    host: str
    ok: bool = False
    reason: str = ""
    previous: str | None = None
    rolled_back: bool = False
    skipped: bool = False
    steps: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.ok:
            return f"{self.host}: OK ({self.steps[-1] if self.steps else 'done'})"
        if self.skipped:
            return f"{self.host}: SKIPPED: {self.reason}"
        return f"{self.host}: FAILED: {self.reason}" + (f"; rolled back to {self.previous}" if self.rolled_back else "")


def _step(result: HostResult, text: str) -> None:
    result.steps.append(text)
    log.info("%s: %s", result.host, text, extra={"host": result.host})


def deploy_to_host(remote: Remote, package: ModelPackage) -> HostResult:
    with remote:
        return _deploy_steps(remote, package)


def _deploy_steps(remote: Remote, package: ModelPackage) -> HostResult:
    result = HostResult(remote.host.label)
    sha = package.sha256
    flipped = False
    try:
        # receive hashes the bytes on the device before they get their final name; activate re-hashes the file.
        remote.device_model("receive", sha, "--model-bytes", str(len(package.model)),
                            "--sidecar-bytes", str(len(package.sidecar)), stdin=package.payload)
        _step(result, f"copied and verified {sha}.tflite")
        activation = remote.device_model("activate", sha)
        result.previous = activation.get("previous")
        flipped = result.previous != activation.get("current")
        _step(result, f"current: {result.previous} -> {activation['current']}")
        remote.reload()
        health = remote.device_model("health", sha, "--since", repr(activation["activated_at"]),
                                     "--timeout", str(remote.host.health_timeout_s),
                                     timeout=remote.host.health_timeout_s + SSH_TIMEOUT_S)
        _step(result, f"healthy: {health['healthy']}")
        result.ok = True
    except DeployError as exc:
        result.reason = str(exc)
        log.error("%s: %s", result.host, exc, extra={"host": result.host})
        if flipped:
            _roll_back(remote, result)
    return result


def _roll_back(remote: Remote, result: HostResult) -> None:
    """Flip `current` back and reload; the reason of the failure stays the result's reason."""
    try:
        args = ["rollback"] + (["--to", result.previous] if result.previous else [])
        remote.device_model(*args)
        remote.reload()
        result.rolled_back = True
        _step(result, f"rolled back: current -> {result.previous}")
    except DeployError as exc:
        result.reason += f"; ROLLBACK FAILED, fix by hand: {exc}"


def deploy(hosts: list[Host], package: ModelPackage, parallel: int = 4,
           remote: Callable[[Host], Remote] = Remote) -> list[HostResult]:
    """The canary (first host) alone, then the rest in parallel only if the canary is healthy."""
    if not hosts:
        raise DeployError("no hosts to deploy to")
    canary = deploy_to_host(remote(hosts[0]), package)
    if not canary.ok:
        return [canary] + [HostResult(h.label, skipped=True, reason=f"canary {canary.host} failed") for h in hosts[1:]]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        rest = list(pool.map(lambda h: deploy_to_host(remote(h), package), hosts[1:]))
    return [canary] + rest


def plan(hosts: list[Host], package: ModelPackage, remote: Callable[[Host], Remote] = Remote) -> list[str]:
    """What a deploy would do, per host; asks each device read-only which model is current."""
    lines = [f"model {package.path} sha256 {package.sha256} ({len(hosts)} host(s); canary {hosts[0].label})"]
    for i, host in enumerate(hosts):
        r = remote(host)
        try:
            current = r.device_model("status").get("current")
        except DeployError as exc:
            current = f"unknown ({exc})"
        lines.append(f"{host.label}{' [canary]' if i == 0 else ''}: current {current} -> {package.sha256}.tflite")
        lines.append(f"    each step runs as: {shlex.join(r.ssh_argv('STEP'))}")
        steps = [r.device_model_command("receive", package.sha256, "--model-bytes", str(len(package.model)),
                                        "--sidecar-bytes", str(len(package.sidecar))) + "  < sidecar + model",
                 r.device_model_command("activate", package.sha256),
                 host.reload_command or "(no reload command: the daemon must notice `current` itself)",
                 r.device_model_command("health", package.sha256, "--since", "ACTIVATED_AT", "--timeout",
                                        str(host.health_timeout_s)),
                 "if anything fails after activate: " + r.device_model_command("rollback", "--to", "PREVIOUS")
                 + " and the reload command"]
        lines += [f"    {n}. {step}" for n, step in enumerate(steps, 1)]
    return lines
