"""The table of the sequence's scans: number and name from the device, state and points from
Redis.

The device's ``ScanNumbers`` and ``ScanNames`` events fill the number and name columns. When the
panel knows the device's data Redis (its ``RedisURL`` property is readable), the state and
point columns are read from each scan's node through ``tango_groups.bliss1`` (its ``state`` info
field, the length of its longest channel), in a worker thread, when the scan is referenced and
again on the device's next events (a new scan, a pending number, the sequence's state) until
the scan has a final state. Without a Redis the two columns are hidden. A Bliss 2 scan (a key,
``DataFormat bliss2``) is read through blissdata 2 (``tango_groups.bliss2``): its state, and the
length of its longest stream.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from collections.abc import Sequence
from typing import Any

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from tango_groups.bliss1.node import get_node
from tango_groups.data.connection import RedisError
from tango_groups.service.requests import SCAN_KEY_PREFIX

__all__ = ["FINAL_STATES", "ScanTable", "read_scan"]

logger = logging.getLogger(__name__)

FINAL_STATES = frozenset({"DONE", "USER_ABORTED", "KILLED", "CLOSED"})  # CLOSED: Bliss 2
COLUMNS = ("Number", "Name", "State", "Points")


def read_scan(redis_url: str, db_name: str) -> tuple[str, int]:
    """(state name, points) of scan ``db_name`` (or Bliss 2 key): ``("?", 0)`` for one that is
    gone."""
    if db_name.startswith(SCAN_KEY_PREFIX):
        return _read_bliss2_scan(redis_url, db_name)
    node = get_node(db_name, connection=redis_url)
    if node is None:
        return "?", 0
    state = node.info.get("state")
    channels = node.walk(filter="channel", wait=False)
    return str(getattr(state, "name", state) or "?"), max((len(c) for c in channels), default=0)


@functools.cache
def _store(redis_url: str) -> Any:
    """blissdata 2's ``DataStore`` (the bliss2 extra: imported only for a Bliss 2 scan)."""
    from tango_groups.bliss2 import data_store

    return data_store(redis_url)


def _read_bliss2_scan(redis_url: str, key: str) -> tuple[str, int]:
    from tango_groups.bliss2 import scan_progress

    return scan_progress(_store(redis_url), key)


class ScanTable(QTableWidget):
    """One row per scan of the sequence (see the module docstring)."""

    _read = pyqtSignal(str, object)  # (db_name, (state, points)) from the worker thread

    def __init__(self, redis_url: str | None, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.redis_url = redis_url
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.setTextElideMode(Qt.ElideLeft)  # db_names differ at their end
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        for column in (2, 3):
            self.setColumnHidden(column, redis_url is None)
        self.numbers: list[int] = []
        self.names: list[str] = []
        self.facts: dict[str, tuple[str, int]] = {}
        self._asked: set[str] = set()  # db_names being read
        self._again: set[str] = set()  # ... and to read again after that
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="scan-facts")
        self._read.connect(self._show_facts)

    def set_numbers(self, numbers: Sequence[int]) -> None:
        self.numbers = [int(number) for number in numbers]
        self._fill()

    def set_names(self, names: Sequence[str]) -> None:
        self.names = [str(name) for name in names]
        self._fill()
        self.refresh()

    def refresh(self) -> None:
        """Read again the scans whose state is not final yet (on the device's events)."""
        if self.redis_url is None:
            return
        for name in self.names:
            state = self.facts.get(name, ("", 0))[0]
            if state in FINAL_STATES:
                continue
            if name in self._asked:  # being read: read it again once that read is shown
                self._again.add(name)
            else:
                self._asked.add(name)
                self._worker.submit(self._read_in_worker, name)

    def _read_in_worker(self, name: str) -> None:
        try:
            facts = read_scan(self.redis_url, name)
        except (RedisError, OSError, ValueError) as error:
            logger.warning("cannot read scan %s: %s", name, error)
            facts = (f"unreadable: {error}", 0)
        self._read.emit(name, facts)

    def _show_facts(self, name: str, facts: tuple[str, int]) -> None:
        self._asked.discard(name)
        self.facts[name] = facts
        self._fill()
        if name in self._again:
            self._again.discard(name)
            self.refresh()

    def _fill(self) -> None:
        rows = min(len(self.numbers), len(self.names))  # the two events arrive one by one
        self.setRowCount(rows)
        for row in range(rows):
            state, points = self.facts.get(self.names[row], ("", 0))
            cells = (str(self.numbers[row]), self.names[row], state, str(points) if state else "")
            for column, text in enumerate(cells):
                item = self.item(row, column)
                if item is None:
                    self.setItem(row, column, QTableWidgetItem(text))
                elif item.text() != text:
                    item.setText(text)

    def row_texts(self) -> list[tuple[str, ...]]:
        """What the table shows, row by row (the visible columns)."""
        visible = [c for c in range(self.columnCount()) if not self.isColumnHidden(c)]
        return [tuple(self.item(row, c).text() for c in visible) for row in range(self.rowCount())]

    def close_worker(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
