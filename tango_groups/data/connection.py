"""Connections to the data Redis: URL parsing (logical db 1 by default), password redaction, a
password kept in a file and read again at each new connection (``PasswordFile``), and the commands
on a server as a whole (``ping``: does it answer; ``probe``: does it answer and does a key
exist, in one round trip; ``run_id``: which run of the server it is; ``save``: snapshot it to its
dump), for both data models.

This is where the product outside ``tango_groups.data`` and ``tango_groups.bliss1`` gets what it
needs of redis-py: ``connect`` for a client, the client type ``Redis`` for type hints, and the
exception types it tells apart (``RedisError``, the base of all; ``RedisConnectionError``,
``RedisTimeoutError``, ``RedisAuthenticationError``: the server refused the credentials). No other
module outside ``tango_groups.data`` and ``tango_groups.bliss1`` imports ``redis``, and none issues
a Redis command: the queries live there and in ``tango_groups.bliss2`` (through blissdata;
tests/unit/test_structure.py checks the imports).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from redis import AuthenticationError as RedisAuthenticationError
from redis import ConnectionError as RedisConnectionError
from redis import Redis, RedisError, ResponseError
from redis import TimeoutError as RedisTimeoutError
from redis.backoff import NoBackoff
from redis.credentials import CredentialProvider
from redis.retry import Retry

__all__ = ["DATA_DB", "PasswordFile", "Redis", "RedisAuthenticationError", "RedisConnectionError",
           "RedisError", "RedisTimeoutError", "ResponseError", "connect", "never_retry",
           "password_file", "ping", "probe", "redact", "run_id", "save", "use_credentials",
           "with_password"]

DATA_DB = 1  # Bliss keeps every data node in logical database 1 of the data Redis


class PasswordFile(CredentialProvider):
    """The credentials of each new connection: the user ``username`` (None: Redis's ``default``)
    and the first line of the file at ``path``, read again at every connection, so that a fixed
    or rotated password is used from the next reconnection on, with no restart. An unreadable file
    refuses that connection (``RedisAuthenticationError``); ``read`` raises ``OSError`` instead."""

    def __init__(self, path: str, username: str | None = None) -> None:
        self.path = path
        self.username = username

    def read(self) -> str:
        """The password; ``OSError`` (naming the file, never its content) when it cannot."""
        try:
            with open(self.path, encoding="utf-8") as secret:
                return secret.readline().rstrip("\r\n")
        except OSError as error:
            raise OSError(f"RedisPasswordFile {self.path!r} cannot be read "
                          f"({error.strerror})") from None

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        try:
            password = self.read()
        except OSError as error:
            raise RedisAuthenticationError(str(error)) from None
        return (password,) if self.username is None else (self.username, password)


def password_file(url: str, path: str) -> PasswordFile | None:
    """The credentials of ``url``'s user with the password in the file at ``path``; None
    without a file, or when ``url`` names a password itself (it wins)."""
    if not path or urlsplit(url).password is not None:
        return None
    return PasswordFile(path, urlsplit(url).username)


def connect(url: str, credentials: PasswordFile | None = None, client_class: type[Redis] = Redis,
            **options: Any) -> Redis:
    """A client of the data Redis at ``url`` (``redis://host:port[/db]``, ``unix:///path``).

    The URL may name a logical database (``redis://host:6380/3``); without one, db 1 is used, the
    database Bliss and blissdata read data nodes from. Responses stay bytes: pickles are decoded
    by ``tango_groups.bliss1.encoding`` only. ``options`` go to ``redis.Redis`` (timeouts...);
    ``client_class``: a subclass of it (``lease.FencedRedis``).

    A failed request is never retried behind the caller's back (redis-py retries three times by
    default): a stream entry written with a position ID must not be sent twice, and a request
    that timed out may still land later, so the caller decides what to re-read before writing
    again.

    ``credentials`` (``password_file``) authenticate each new connection, the URL's user with
    the password read from the file at that moment.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unsupported Redis URL {redact(url)!r}: use redis://host:port[/db]")
    names_db = "db=" in parts.query if parts.scheme == "unix" else parts.path.strip("/") != ""
    if not names_db:
        options.setdefault("db", DATA_DB)
    options.setdefault("retry", Retry(NoBackoff(), 0))
    if credentials is not None:  # the user goes with them: redis-py refuses both
        url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        options["credential_provider"] = credentials
    return client_class.from_url(url, **options)


def use_credentials(client: Redis, credentials: PasswordFile) -> None:
    """Authenticate every connection a client built elsewhere (blissdata's, from a URL
    ``with_password``) opens from now on with ``credentials``. Its connections are closed and
    forgotten (each would reconnect with the password it was made with): call it before the
    client is shared."""
    pool = client.connection_pool
    pool.connection_kwargs.pop("username", None)
    pool.connection_kwargs.pop("password", None)
    pool.connection_kwargs["credential_provider"] = credentials
    pool.disconnect()
    pool.reset()


def never_retry(client: Redis) -> None:
    """Make a client built elsewhere (blissdata's) fail at once, like ``connect``'s: redis-py's
    default retries a timed-out request three times with up to 10 s of backoff."""
    client.set_retry(Retry(NoBackoff(), 0))


def ping(url: str, **options: Any) -> None:
    """PING the Redis at ``url`` on a connection of its own (``options`` as for ``connect``),
    closed after. Raises ``RedisError`` when it does not answer (``RedisConnectionError``: nothing
    listens there, or the server is still loading its dump)."""
    client = connect(url, **options)
    try:
        client.ping()
    finally:
        client.close()


def save(url: str, timeout: float = 30.0) -> None:
    """``SAVE``: the Redis at ``url`` writes everything it holds to its dump file, now."""
    client = connect(url, socket_timeout=timeout)
    try:
        client.save()
    finally:
        client.close()


def with_password(url: str, password: str | None) -> str:
    """``url`` carrying ``password`` (for clients that take a URL only, as blissdata's
    ``DataStore`` does); unchanged without one. Never log the result: ``redact`` it."""
    if password is None:
        return url
    parts = urlsplit(url)
    secret = quote(password, safe="")
    if parts.scheme == "unix":
        query = "&".join(filter(None, [parts.query, f"password={secret}"]))
        return urlunsplit(parts._replace(query=query))
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:{secret}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs, attributes and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def probe(client: Redis, key: str | None = None) -> bool:
    """Ping Redis (a failure raises); with ``key``: whether that key (a 1.x node, a Bliss 2
    scan) still exists (one round trip)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.ping()
        if key is not None:
            pipe.exists(key)
        replies = pipe.execute()
    return key is None or bool(replies[1])


def run_id(client: Redis) -> str:
    """The server's ``run_id`` (INFO server): a new one after every restart of Redis."""
    return str(client.info("server")["run_id"])
