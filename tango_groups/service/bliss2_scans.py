"""The Bliss 2 scans clients name, found in the blissdata store: ``Bliss2Scans`` answers
``Bliss2Service`` with keys and loaded scans, or refuses with the service's reasons
(``UnknownScan``: not a Bliss 2 key, no scan of that number, a scan gone; ``DuplicateScan``: a
group listing a scan twice). Every Redis request goes through the service's ``redis`` (a failure
is its ``RedisUnavailable``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.scan import Scan
from blissdata.redis_engine.store import DataStore

from ..bliss2 import scan_of_number
from ..bliss2.h5maps import Entry, saved_entry
from .reasons import ManagerError, Reason
from .requests import SCAN_KEY_PREFIX

__all__ = ["Bliss2Scans"]


class Bliss2Scans:
    """The scans of ``session`` in ``store`` (see the module docstring)."""

    def __init__(self, store: DataStore, session: str,
                 redis: Callable[[Callable[[], Any]], Any]) -> None:
        self.store, self.session, self._redis = store, session, redis

    @staticmethod
    def key(reference: str) -> str:
        """``reference`` when it is a Bliss 2 scan key."""
        if not reference.startswith(SCAN_KEY_PREFIX):
            raise ManagerError(Reason.UNKNOWN_SCAN,
                               f"{reference!r} is not a Bliss 2 scan key: DataFormat "
                               f"bliss2 takes {SCAN_KEY_PREFIX}<id> or numbers")
        return reference

    def of_number(self, number: int) -> tuple[str | None, str]:
        """The key of the session's scan ``number`` (None: none yet) and the moment of the
        search (``bliss2.store.scan_of_number``)."""
        return self._redis(lambda: scan_of_number(self.store, self.session, number))

    def load(self, key: str) -> Scan:
        """Scan ``key`` as blissdata reads it."""
        try:
            return self._redis(lambda: self.store.load_scan(key))
        except ScanNotFoundError as error:
            raise ManagerError(Reason.UNKNOWN_SCAN,
                               f"{error} (expired, deleted, never written)") from None

    def members(self, references: list[int | str]) -> list[tuple[str, int, Entry | None]]:
        """(key, number, the entry it is saved in) of each scan a group lists, all found."""
        found = []
        for reference in references:
            if isinstance(reference, int):
                key, _ = self.of_number(reference)
                if key is None:
                    raise ManagerError(Reason.UNKNOWN_SCAN, f"no scan number {reference} in "
                                       f"session {self.session}")
            else:
                key = self.key(reference)
            scan = self.load(key)
            found.append((key, int(scan.number), saved_entry(scan)))
        if len({key for key, _, _ in found}) != len(found):
            raise ManagerError(Reason.DUPLICATE_SCAN, "a scan is listed twice")
        return found
