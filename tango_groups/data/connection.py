"""Connections to the data Redis: URL parsing (logical db 1 by default) and password redaction.

The one module outside the data layer's commands that others import for Redis: the client type
and the exception types (``RedisError`` and its ``ConnectionError`` / ``TimeoutError``) are
re-exported here, so that no other part of the package imports ``redis`` itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError
from redis.retry import Retry

__all__ = ["DATA_DB", "ConnectionError", "Redis", "RedisError", "TimeoutError", "connect",
           "redact"]

Redis = redis.Redis

DATA_DB = 1  # Bliss keeps every data node in logical database 1 of the data Redis


def connect(url: str, **options: Any) -> redis.Redis:
    """A client of the data Redis at ``url`` (``redis://host:port[/db]``, ``unix:///path``).

    The URL may name a logical database (``redis://host:6380/3``); without one, db 1 is used, the
    database Bliss and blissdata read data nodes from. Responses stay bytes: pickles are decoded
    by ``tango_groups.data.encoding`` only. ``options`` go to ``redis.Redis`` (timeouts...).

    A failed request is never retried behind the caller's back (redis-py retries three times by
    default): a stream entry written with a position ID must not be sent twice, and a request
    that timed out may still land later, so the caller decides what to re-read before writing
    again.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unsupported Redis URL {redact(url)!r}: use redis://host:port[/db]")
    names_db = "db=" in parts.query if parts.scheme == "unix" else parts.path.strip("/") != ""
    if not names_db:
        options.setdefault("db", DATA_DB)
    options.setdefault("retry", Retry(NoBackoff(), 0))
    return redis.Redis.from_url(url, **options)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs, attributes and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
