"""``ScanList``: the scans of the device's sequence, as its ``ScanNumbers`` / ``ScanNames``
attributes show them, kept from the service's ``ScansAdded`` notifications.

Appending costs the same with ten scans or with ten thousand: numbers go to a numpy buffer that
doubles when full, and an attribute value is a view of its filled part (later appends never
write into a view already handed out, so a queued push stays what it was).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy

__all__ = ["ScanList"]


class ScanList:
    def __init__(self) -> None:
        self._numbers = numpy.empty(64, dtype=numpy.int64)
        self._names: list[str] = []

    def __len__(self) -> int:
        return len(self._names)

    def extend(self, numbers: Sequence[int], names: Sequence[str]) -> None:
        count, end = len(self._names), len(self._names) + len(numbers)
        if end > len(self._numbers):
            grown = numpy.empty(max(end, 2 * len(self._numbers)), dtype=numpy.int64)
            grown[:count] = self._numbers[:count]
            self._numbers = grown
        self._numbers[count:end] = numbers
        self._names.extend(names)

    def numbers(self) -> numpy.ndarray:
        """The numbers so far (a read-only view)."""
        view = self._numbers[:len(self._names)]
        view.flags.writeable = False
        return view

    def names(self) -> list[str]:
        """The db_names so far (a copy)."""
        return list(self._names)
