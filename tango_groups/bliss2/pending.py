"""Waiting for Bliss 2 scans by number: ``Awaited`` follows a session's new scans until the scan
of a number is PREPARED, then hands it over.

A number added before its scan exists is followed from the moment of the search that did not
find it: blissdata's ``search_existing_scans`` returns the ``_SCAN_HISTORY_`` ID of that moment,
and ``get_next_scan(since=...)`` reads every scan announced after it, so none created in between
is missed. A scan found while still CREATED is followed by its own state stream. One thread per
awaited number; each waits at most ``block`` seconds per Redis call, so ``cancel()`` takes effect
within that time. The store it follows with needs a socket timeout longer than ``block``. A
Redis failure is reported and the follower goes on once Redis answers. ``PendingScans`` keeps
the followers of a running sequence (the service's); ``NumberFollowers`` those of a
``Sequence`` of a bliss2 ``Session`` (``add_number``: ``scanning.model.PendingNumbers``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable

from blissdata.exceptions import NoScanAvailable, ScanNotFoundError
from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore

from ..data.connection import RedisError
from .store import WRITER, WRITTEN_BY, scan_of_number

__all__ = ["Awaited", "NumberFollowers", "PendingScans", "PreparedScan"]

logger = logging.getLogger(__name__)


class Awaited:
    """Scan ``number`` of ``session``, announced after ``since`` (or already known as ``key``):
    ``ready(number, scan)`` once it is PREPARED (the loaded scan); ``failed(number, error)`` when
    Redis fails (the follower tries again every ``block`` seconds) or the scan was deleted (it
    stops)."""

    def __init__(self, store: DataStore, session: str, number: int, *, since: str,
                 key: str | None, ready: Callable[[int, Scan], None],
                 failed: Callable[[int, Exception], None], block: float = 0.5) -> None:
        self.number = number
        self._store, self._session, self._since, self._key = store, session, since, key
        self._ready, self._failed, self._block = ready, failed, block
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bliss2-scan-{number}",
                                        daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop following (no callback after the current Redis call)."""
        self._cancelled.set()

    def _run(self) -> None:
        """Follow until PREPARED; a Redis failure is reported and the follower goes on from
        where it was once Redis answers (a scan deleted meanwhile ends it)."""
        while not self._cancelled.is_set():
            try:
                scan = self._store.load_scan(self._key) if self._key else self._announced()
                if scan is None:
                    return
                self._key = scan.key
                while scan.state < ScanState.PREPARED:
                    if self._cancelled.is_set():
                        return
                    scan.update(timeout=self._block)
            except RedisError as error:
                if not self._cancelled.is_set():
                    self._failed(self.number, error)
                self._cancelled.wait(self._block)
                continue
            except ScanNotFoundError as error:
                if not self._cancelled.is_set():
                    self._failed(self.number, error)
                return
            if not self._cancelled.is_set():
                self._ready(self.number, scan)
            return

    def _announced(self) -> Scan | None:
        """The first scan of the session with the number announced after ``since`` that
        tango_groups did not write itself."""
        while not self._cancelled.is_set():
            try:
                self._since, key = self._store.get_next_scan(since=self._since,
                                                             timeout=self._block)
            except NoScanAvailable:
                continue
            try:
                scan = self._store.load_scan(key)
            except ScanNotFoundError:  # an older scan of the history, expired since
                continue
            if (scan.session == self._session and scan.number == self.number
                    and scan.info.get(WRITTEN_BY) != WRITER):  # not a sequence or group of ours
                return scan
        return None


class PendingScans:
    """The numbers a running sequence awaits, one ``Awaited`` each, under its owner's ``lock``.

    ``reference(number, scan)`` once scan ``number`` is PREPARED (False: Redis failed, follow it
    again); ``unreachable(error)`` on a Redis failure (the follower goes on); ``changed(numbers)``
    whenever the numbers awaited change (not on ``cancel``)."""

    def __init__(self, store: DataStore, session: str, lock: threading.RLock, *,
                 reference: Callable[[int, Scan], bool],
                 unreachable: Callable[[Exception], object],
                 changed: Callable[[tuple[int, ...]], None], block: float = 0.5) -> None:
        self._store, self._session, self._lock, self._block = store, session, lock, block
        self._reference, self._unreachable, self._changed = reference, unreachable, changed
        self._awaited: dict[int, Awaited] = {}
        self._settled = threading.Condition(lock)  # notified when nothing is awaited

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(self._awaited)

    def follow(self, number: int, *, since: str | None = None, key: str | None = None) -> None:
        """Await scan ``number``: announced after ``since``, or already known as ``key``."""
        with self._lock:
            self._awaited[number] = Awaited(self._store, self._session, number,
                                            since=since or "0-0", key=key, ready=self._ready,
                                            failed=self._failed, block=self._block)
            self._changed(self.numbers)

    def wait(self, timeout: float) -> None:
        """Until nothing is awaited, at most ``timeout`` seconds (the lock is released)."""
        self._settled.wait_for(lambda: not self._awaited, timeout)

    def cancel(self) -> None:
        """Follow nothing more."""
        for awaited in self._awaited.values():
            awaited.cancel()
        self._awaited.clear()

    def _ready(self, number: int, scan: Scan) -> None:
        with self._lock:
            if self._awaited.pop(number, None) is None:
                return
            if not self._reference(number, scan):
                self.follow(number, key=scan.key)
                return
            self._done()

    def _failed(self, number: int, error: Exception) -> None:
        with self._lock:
            if self._awaited.get(number) is None:
                return
            if isinstance(error, RedisError):  # followed on once Redis answers
                self._unreachable(error)
                return
            logger.warning("pending scan %s vanished: %s", number, error)
            self._awaited.pop(number)
            self._done()

    def _done(self) -> None:
        if not self._awaited:
            self._settled.notify_all()
        self._changed(self.numbers)


@dataclasses.dataclass(frozen=True)
class PreparedScan:
    """Scan ``number`` found PREPARED, as a ``Sequence`` references it (what
    ``bliss1.lookup.ScanFacts`` is to a 1.x one)."""

    db_name: str  # its esrf:scan:... key
    number: int
    ended: bool

    def node(self, client: object) -> str:
        """What the sequence keeps of it: its key (Bliss 2 has no data nodes)."""
        return self.db_name


class NumberFollowers:
    """The numbers a ``Sequence`` of session ``session`` awaits (``add_number``), one
    ``Awaited`` each: ``on_prepared(PreparedScan)`` once its scan is PREPARED (at once when it
    is already), ``on_error(error)`` when Redis fails (the followers go on). Its owner
    serialises ``follow``, ``restart`` and ``stop``; the callbacks come from the followers'
    threads, and the owner checks that it still awaits the number."""

    def __init__(self, store: DataStore, session: str,
                 on_prepared: Callable[[PreparedScan], None],
                 on_error: Callable[[RedisError], None], block: float = 0.5) -> None:
        self._store, self._session, self._block = store, session, block
        self._on_prepared, self._on_error = on_prepared, on_error
        self._awaited: list[Awaited] = []

    def follow(self, number: int, facts: object = None) -> None:
        """Follow scan ``number`` of the session from what Redis holds now (``facts``, what a
        1.x lookup found, has no Bliss 2 counterpart: the number is looked up here)."""
        key, since = scan_of_number(self._store, self._session, number)
        if key is not None:
            try:
                scan = self._store.load_scan(key)
            except ScanNotFoundError:  # deleted since the search: await a newer one
                key = None
            else:
                if scan.state >= ScanState.PREPARED:
                    self._ready(number, scan)
                    return
        self._awaited.append(Awaited(self._store, self._session, number, since=since, key=key,
                                     ready=self._ready, failed=self._failed,
                                     block=self._block))

    def restart(self, numbers: Iterable[int]) -> None:
        """Follow ``numbers`` again from what Redis holds now."""
        self.stop()
        for number in numbers:
            self.follow(number)

    def stop(self) -> None:
        """Follow nothing more (the followers end within ``block`` seconds, not waited for)."""
        for awaited in self._awaited:
            awaited.cancel()
        self._awaited.clear()

    def _ready(self, number: int, scan: Scan) -> None:
        self._on_prepared(PreparedScan(scan.key, number, scan.state >= ScanState.STOPPED))

    def _failed(self, number: int, error: Exception) -> None:
        if isinstance(error, RedisError):
            self._on_error(error)
        else:  # deleted before it was prepared: it stays pending (end() lists it unfinished)
            logger.warning("pending scan %s vanished: %s", number, error)
