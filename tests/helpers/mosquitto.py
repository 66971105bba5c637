"""A real mosquitto broker for the MQTT tests: loopback only, a free port, a generated config.

Never a mock: the publishing side's promises (will, retained availability,
QoS 1 acknowledgements, reconnects) only mean something against a real broker.
The broker can be stopped and started again on the same port (to play a broker
outage), run with a password file, with TLS from a throwaway CA, and with
persistence (so a subscriber's persistent session and its queued messages
survive the restart, as on a production broker).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.peers import accepts, terminate

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TestPki:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_test_pki(directory: Path) -> TestPki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return path

    def write_cert(cert: x509.Certificate, path: Path) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("emotion-edge test CA")).issuer_name(name("emotion-edge test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, usage, sans: list[x509.GeneralName]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server, server_key = leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                              [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client, client_key = leaf("emotion-edge-test-client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return TestPki(
        ca_cert=write_cert(ca, directory / "ca.pem"),
        server_cert=write_cert(server, directory / "server.pem"),
        server_key=write_key(server_key, directory / "server.key"),
        client_cert=write_cert(client, directory / "client.pem"),
        client_key=write_key(client_key, directory / "client.key"),
    )


@dataclass
class Mosquitto:
    """One mosquitto process on 127.0.0.1:`port`; start() again after stop() reuses the port and the config."""

    binary: str
    workdir: Path
    port: int
    users: dict[str, str] = field(default_factory=dict)  # user -> password; empty: anonymous allowed
    pki: TestPki | None = None
    require_client_cert: bool = False
    persistence: bool = False
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", f"log_dest file {self.log_path}", "log_type all",
                 f"persistence {'true' if self.persistence else 'false'}"]
        if self.persistence:
            lines.append(f"persistence_location {self.workdir}/")
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to user 'mosquitto', who cannot read the test's files
        if self.users:
            password_file = self.workdir / "passwords"
            password_file.unlink(missing_ok=True)
            passwd = str(Path(self.binary).with_name("mosquitto_passwd"))
            if not Path(passwd).exists():
                passwd = "mosquitto_passwd"
            for user, password in self.users.items():
                create = [] if password_file.exists() else ["-c"]
                subprocess.run([passwd, *create, "-b", str(password_file), user, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.pki is not None:
            lines += [f"cafile {self.pki.ca_cert}", f"certfile {self.pki.server_cert}", f"keyfile {self.pki.server_key}",
                      f"require_certificate {'true' if self.require_client_cert else 'false'}"]
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> Mosquitto:
        config = self._write_config()
        self.process = subprocess.Popen([self.binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: "
                                   f"{self.process.stderr.read().decode(errors='replace')} {self.log_text()}")
            if accepts(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        """A clean stop (SIGTERM): with persistence on, sessions and queued messages are saved."""
        if self.process is None:
            return
        terminate(self.process, 5)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

