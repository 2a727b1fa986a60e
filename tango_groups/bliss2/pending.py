"""Waiting for Bliss 2 scans by number: ``Awaited`` follows a session's new scans until the scan
of a number is PREPARED, then hands it over.

A number added before its scan exists is followed from the moment of the search that did not
find it: blissdata's ``search_existing_scans`` returns the ``_SCAN_HISTORY_`` ID of that moment,
and ``get_next_scan(since=...)`` reads every scan announced after it, so none created in between
is missed. A scan found while still CREATED is followed by its own state stream. One thread per
awaited number; each waits at most ``block`` seconds per Redis call, so ``cancel()`` takes effect
within that time. The store it follows with needs a socket timeout longer than ``block``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from blissdata.exceptions import NoScanAvailable, ScanNotFoundError
from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore

from ..data.connection import RedisError

__all__ = ["Awaited"]

logger = logging.getLogger(__name__)


class Awaited:
    """Scan ``number`` of ``session``, announced after ``since`` (or already known as ``key``):
    ``ready(number, scan)`` once it is PREPARED (the loaded scan), ``failed(number, error)``
    when Redis fails (the follower stops then)."""

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
        try:
            scan = self._store.load_scan(self._key) if self._key else self._announced()
            while scan is not None and scan.state < ScanState.PREPARED:
                if self._cancelled.is_set():
                    return
                scan.update(timeout=self._block)
        except (RedisError, ScanNotFoundError) as error:  # Redis failed, or scan deleted
            if not self._cancelled.is_set():
                self._failed(self.number, error)
            return
        if scan is not None and not self._cancelled.is_set():
            self._ready(self.number, scan)

    def _announced(self) -> Scan | None:
        """The first scan of the session with the number announced after ``since``."""
        since = self._since
        while not self._cancelled.is_set():
            try:
                since, key = self._store.get_next_scan(since=since, timeout=self._block)
            except NoScanAvailable:
                continue
            scan = self._store.load_scan(key)
            if scan.session == self._session and scan.number == self.number:
                return scan
        return None
