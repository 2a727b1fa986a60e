"""The blissdata 2 ``DataStore`` as a service uses it: set up on first use, bounded in time.

``data_store(url, timeout)`` opens (and on an empty db sets up) the store; with a timeout, each
Redis request fails after that long and is never retried. ``find_scans`` is blissdata's search
by session and number. ``bounded`` puts a deadline on the calls that wait for blissdata's stream
sinks: in blissdata 2.4.5 a sink's thread dies on a connection error or a timeout (it handles
Redis's error replies only), and ``join()`` or ``seal()`` then wait forever; a service cannot
let a client wait that long. ``close_left_open`` closes a scan that its writer left open (a
crash), the way blissdata's own ``delete_scan(force=True)`` closes one, without deleting it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore

from ..data.connection import Redis, RedisTimeoutError, never_retry

__all__ = ["bounded", "close_left_open", "data_store", "find_scans", "store_client"]

T = TypeVar("T")


def data_store(url: str, timeout: float | None = None) -> DataStore:
    """``DataStore(url)``; on a db blissdata never used, set it up first (``init_db=True``).

    With ``timeout`` (seconds), each Redis request of the store fails after that long and is
    never retried (redis-py's default retries a timed-out request three times with up to 10 s
    of backoff): what a service answering clients needs. A db that is neither set up nor empty
    raises blissdata's ``RuntimeError``; two first users racing are fine (the loser of the
    set-up finds the protocol key).
    """
    if timeout is not None:
        parts = urlsplit(url)
        query = "&".join(filter(None, [parts.query, f"socket_timeout={timeout}",
                                       f"socket_connect_timeout={timeout}"]))
        url = urlunsplit(parts._replace(query=query))
    try:
        store = DataStore(url)
    except RuntimeError as not_set_up:
        if "No blissdata protocol version" not in str(not_set_up):
            raise
        try:
            store = DataStore(url, init_db=True)
        except RuntimeError:
            store = DataStore(url)  # set up meanwhile by someone else, or refused: its own error
    if timeout is not None:
        never_retry(store_client(store))
    return store


def store_client(store: DataStore) -> Redis:
    """The redis-py client of a ``DataStore``: blissdata keeps it private (``_redis``) and
    offers no accessor; this is the one place that reaches for it."""
    return store._redis


def find_scans(store: DataStore, session: str, number: int | None = None) -> list[str]:
    """Keys of the session's scans (of that number only, when given), oldest first."""
    query: dict[str, Any] = {"session": session}
    if number is not None:
        query["number"] = number
    _, keys = store.search_existing_scans(**query)
    return sorted(keys)  # ULIDs sort by creation time


def bounded(call: Callable[[], T], timeout: float | None) -> T:
    """``call()``, or ``RedisTimeoutError`` when it has not returned within ``timeout`` seconds
    (it runs on in a daemon thread, which a dead blissdata sink never releases). None: no limit."""
    if timeout is None:
        return call()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except Exception as error:  # noqa: BLE001 (raised again in the caller's thread)
            outcome.append((False, error))

    worker = threading.Thread(target=run, name="blissdata-call", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise RedisTimeoutError(f"blissdata did not finish within {timeout} s")
    done, value = outcome[0]
    if not done:
        raise value
    return value


def close_left_open(store: DataStore, key: str, reason: str = "FAILURE") -> bool:
    """Close scan ``key`` that its writer left open: every stream sealed (readers waiting on
    them are released), ``info["end_reason"]`` set, state CLOSED. Returns False when it was
    closed already. blissdata offers this only inside ``delete_scan(force=True)``, through its
    private ``Scan._load_rw``; the seals go through its public ``get_writer_stream``."""
    scan = Scan._load_rw(store, key)
    if scan.state is ScanState.CLOSED:
        return False
    if scan.state >= ScanState.PREPARED:  # streams reach the document with PREPARED
        for name in scan.streams:
            writer = scan.get_writer_stream(name)
            writer.seal()
    scan.info = {**scan.info, "end_reason": reason}
    scan.close()
    return True
