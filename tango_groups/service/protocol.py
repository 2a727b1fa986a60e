"""``SequenceService``: what a sequence service is, whatever data model it writes.

The Tango device is written against this interface only; ``bliss1`` (Bliss 1.x data nodes),
``bliss2`` (blissdata 2.x scans) and ``both`` (one sequence in each, composed from the other two
through this interface) implement it. A service is built by a ``ServiceFactory`` from the one
callback it reports every change to (``notifications``); it refuses a request with a
``ManagerError`` (``reasons``) before it writes anything.

Life cycle: ``open`` (deal with what a previous run left, start the health check), commands,
``close`` (end a running sequence, stop the threads), ``release`` (give the lease up, close the
Redis clients).

Two-step writes: ``plan_add`` and ``plan_group`` run every check of ``add_scan`` and
``create_group`` and return the write without doing it, so that ``both`` writes in neither model
when either refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..scanning.scan import ScanState
from .notifications import NotificationCallback
from .requests import StartRequest
from .states import Phase

__all__ = ["SequenceService", "ServiceFactory", "Write"]

Write = Callable[[], str]  # a checked write: returns what the command answers


class SequenceService(Protocol):
    """One live sequence at a time, and groups; every change is notified (see the module)."""

    phase: Phase  # IDLE, RUNNING or LOST
    sequence_name: str  # the current (or last) sequence's db_name or key

    def open(self, health_period: float) -> None: ...

    def close(self) -> None: ...

    def release(self) -> None: ...

    def start(self, request: StartRequest) -> str:
        """Create the sequence; returns its db_name (bliss1) or key (bliss2)."""

    def add_scan(self, text: str) -> str:
        """Reference a scan (number, db_name, key); returns its name or ``pending:<n>``."""

    def plan_add(self, reference: int | str) -> Write:
        """Every check of ``add_scan`` for a parsed reference; the write, not done yet."""

    def emit(self, channel: str, data: Any, flat: bool = False) -> int:
        """Append points to a custom channel; returns how many."""

    def end(self, state: ScanState | None = None) -> str:
        """End the sequence (``state`` forced, or after waiting for pending scans); returns the
        final state's name."""

    def abort(self) -> str: ...

    def create_group(self, request: str) -> str:
        """A group of existing scans; returns its db_name or key."""

    def plan_group(self, references: list[int | str], title: str | None,
                   scan_info: dict[str, Any]) -> Write:
        """Every check of ``create_group`` for parsed references; the write, not done yet."""

    def give_up(self, why: str) -> None:
        """The running sequence can no longer be written as it should (``why``): LOST; End or
        Abort closes it."""

    def status(self) -> str: ...


ServiceFactory = Callable[[NotificationCallback], SequenceService]
