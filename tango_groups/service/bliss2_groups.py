"""``Bliss2Groups``: ``CreateGroup`` of the Bliss 2 core (``Bliss2Manager``): a sequence scan of
existing scans, closed at once. Every scan is found (by key, or by number in the session) before
anything is written, so a refused group leaves nothing in Redis; a group whose writing fails is
closed from a fresh load (its stream writers may be gone).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.store import DataStore

from ..bliss2 import SequenceScan, bounded, close_left_open, ensure_set_up, scan_of_number
from ..data.connection import RedisError
from ..session import Session
from .requests import DUPLICATE_SCAN, SCAN_KEY_PREFIX, ManagerError

__all__ = ["Bliss2Groups"]

logger = logging.getLogger(__name__)


class Bliss2Groups:
    """The group commands of ``Bliss2Manager`` (which provides what is declared here)."""

    store: DataStore
    session: Session
    timeout: float
    _lock: threading.RLock
    _sync: Callable[[], None]
    _redis: Callable[..., Any]
    _lookup: Callable[[Any], Any]
    _checked_key: Callable[[str], str]
    _next_number: Callable[[], int]

    def group_members(self, references: list[int | str]) -> list[tuple[str, int]]:
        """The (key, number) of each scan a group is asked for; refused before anything is
        written (``UnknownScan``, ``DuplicateScan``)."""
        with self._lock:
            self._sync()
            self._redis(lambda: ensure_set_up(self.store))
            found: list[tuple[str, int]] = []
            for reference in references:
                if isinstance(reference, int):
                    key, _ = self._redis(lambda n=reference: scan_of_number(
                        self.store, self.session.name, n))
                    if key is None:
                        raise ManagerError("UnknownScan", f"no scan number {reference} in "
                                                          f"session {self.session.name}")
                elif not reference.startswith(SCAN_KEY_PREFIX):
                    self._checked_key(reference)  # raises: not a Bliss 2 key
                else:
                    key = reference
                scan = self._lookup(lambda k=key: self.store.load_scan(k))
                found.append((key, int(scan.number)))
            if len({key for key, _ in found}) != len(found):
                raise ManagerError(DUPLICATE_SCAN, "a scan is listed twice")
            return found

    def write_group(self, members: list[tuple[str, int]], title: str | None,
                    scan_info: dict[str, Any]) -> str:
        """Write the group of ``members`` (from ``group_members``); returns its key."""
        with self._lock:
            number = self._redis(self._next_number)
            group = self._redis(lambda: SequenceScan(
                self.store, session=self.session.name, number=number, name="group_of_scans",
                title=title or "group_of_scans", scan_info=scan_info))
            try:
                for key, scan_number in members:
                    group.add_scan(key, scan_number)
                self._redis(lambda: bounded(group.end, self.timeout))
            except ManagerError:
                try:  # its writers may be gone: close it from a fresh load
                    close_left_open(self.store, group.key)
                except (RedisError, ScanNotFoundError) as error:
                    logger.warning("group %s left open: %s", group.key, error)
                raise
            return group.key
