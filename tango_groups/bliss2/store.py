"""The blissdata 2 ``DataStore`` as a service uses it: set up on first use, bounded in time.

``data_store(url, timeout)`` opens (and on an empty db sets up) the store; with a timeout, each
Redis request fails after that long and is never retried. ``find_scans`` is blissdata's search
by session and number (``scan_of_number``: the newest of a number, a scan before what
tango_groups wrote itself); ``next_number`` counts the session's scan numbers.
``close_left_open`` closes a scan that its writer left open (a crash), the way blissdata's own
``delete_scan(force=True)`` closes one, without deleting it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.scan import ScanState
from blissdata.redis_engine.store import DataStore

from ..data.connection import Redis, never_retry
from ..data.counters import last_number as counted
from ..data.counters import next_number as count
from .streams import open_scan, seal

__all__ = ["WRITER", "WRITTEN_BY", "SessionCounter", "close_left_open", "data_store",
           "ensure_set_up", "find_scans", "last_number", "next_number", "scan_of_number",
           "scan_progress", "store_client", "stream_tails"]

PROTOCOL_KEY = "_PROTOCOL_VERSION_"  # set by blissdata on a db it set up
COUNTER = "tango_groups:bliss2:{session}"  # a hash counting the session's scan numbers
COUNTER_FIELD = "last_scan_number"  # its field (the name Bliss 1.x gives its own counter)
WRITTEN_BY = "written_by"  # info field of the sequences and groups tango_groups writes
WRITER = "tango_groups"  # its value


def data_store(url: str, timeout: float | None = None, set_up: bool = True) -> DataStore:
    """``DataStore(url)``; on a db blissdata never used, set it up first (``init_db=True``),
    unless ``set_up`` is False (blissdata's ``RuntimeError`` then).

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
        if not set_up or "No blissdata protocol version" not in str(not_set_up):
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


def scan_of_number(store: DataStore, session: str, number: int) -> tuple[str | None, str]:
    """The key of the session's scan ``number`` (None when there is none) and the moment of the
    search (``get_next_scan(since=...)`` from there misses no scan created after it). Of several
    with that number: the newest that tango_groups did not write itself (a sequence or group,
    marked ``info[WRITTEN_BY]``), else the newest."""
    since, keys = store.search_existing_scans(session=session, number=number)
    keys = sorted(keys, reverse=True)  # ULIDs sort by creation time: newest first
    if len(keys) > 1:  # loaded newest first, until one is not ours
        return next((key for key in keys if not _written_here(store, key)), keys[0]), since
    return (keys[0] if keys else None), since


def _written_here(store: DataStore, key: str) -> bool:
    """Scan ``key`` is a sequence or group tango_groups wrote (or is gone meanwhile)."""
    try:
        return store.load_scan(key).info.get(WRITTEN_BY) == WRITER
    except ScanNotFoundError:
        return True


def next_number(store: DataStore, session: str) -> int:
    """The session's next scan number: ``tango_groups:bliss2:{session}`` counts them (as Bliss
    1.x containers do: writers of tango_groups never share a number), moved past the number of
    the session's newest scan at each call. Bliss 2 counts in its settings Redis
    (``data.counters.SharedCounter`` shares that counter): without it, a scan Bliss numbers
    between this search and its own creation can still get the same number."""
    keys = find_scans(store, session)
    newest = int(store.load_scan(keys[-1]).number) if keys else 0
    return count(store_client(store), COUNTER.format(session=session), COUNTER_FIELD,
                 floor=newest)


def last_number(store: DataStore, session: str) -> int:
    """The session's scan number given last (``next_number``'s counter; 0 before the first)."""
    return counted(store_client(store), COUNTER.format(session=session), COUNTER_FIELD)


class SessionCounter:
    """``next_number`` and ``last_number`` of ``session`` (``data.counters.Numbers``)."""

    def __init__(self, store: DataStore, session: str) -> None:
        self.store, self.session = store, session

    def next(self) -> int:
        return next_number(self.store, self.session)

    def last(self) -> int:
        return last_number(self.store, self.session)


def scan_progress(store: DataStore, key: str) -> tuple[str, int]:
    """(state name, points of its longest stream) of scan ``key``, as blissdata reads them;
    ``("?", 0)`` when it is gone."""
    try:
        scan = store.load_scan(key)
    except ScanNotFoundError:
        return "?", 0
    if scan.state < ScanState.PREPARED:  # streams reach the document with PREPARED
        return scan.state.name, 0
    return scan.state.name, max((len(stream) for stream in scan.streams.values()), default=0)


def stream_tails(store: DataStore, key: str, starts: Mapping[str, int]) -> dict[str, Any]:
    """The points of scan ``key``'s streams from ``starts[name]`` on, for those that hold more."""
    streams = store.load_scan(key).streams
    return {name: streams[name][start:] for name, start in starts.items()
            if name in streams and len(streams[name]) > start}


def ensure_set_up(store: DataStore) -> None:
    """Set the store's db up again when it lost everything (a Redis restarted without its
    data): blissdata sets a db up only when a ``DataStore`` is created (through its private
    ``_setup_redis_db``, which refuses a db that is not empty)."""
    if not store_client(store).exists(PROTOCOL_KEY):
        try:
            store._setup_redis_db()
        except RuntimeError:  # not empty: set up meanwhile, or used by something else
            if not store_client(store).exists(PROTOCOL_KEY):
                raise


def close_left_open(store: DataStore, key: str, reason: str = "FAILURE") -> bool:
    """Close scan ``key`` that its writer left open: every stream sealed (readers waiting on
    them are released), ``info["end_reason"]`` set, state CLOSED. Returns False when it was
    closed already. blissdata offers this only inside ``delete_scan(force=True)``, through its
    private ``Scan._load_rw`` (``streams.open_scan``)."""
    scan, writers = open_scan(store, key)
    if scan.state is ScanState.CLOSED:
        return False
    seal(writers.values())
    scan.info = {**scan.info, "end_reason": reason}
    scan.close()
    return True
