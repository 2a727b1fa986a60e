"""``BothManager``: one sequence written in both data models at once (``DataFormat both``).

It drives a ``Manager`` (Bliss 1.x data nodes, the *first* model: its db_name is what ``Start``
returns and what the device shows) and a ``Bliss2Manager`` (the *second*: its key is the
sequence's ``ScanKey``), each referencing the scans of its own generation:

* ``start``: the Bliss 2 sequence, then the 1.x one (a 1.x refusal closes the Bliss 2 one again);
* ``add_scan``: a number goes to both (the 1.x scan of that number in the container, the Bliss 2
  scan of that number in the session: each may be pending on its own); a db_name to the first
  only, a Bliss 2 key to the second only. Both sides check a number (``plan_add``) before either
  writes: a refusal of either writes nothing in both. A number one model already holds (a client
  repeating the command after a failure) is added to the other only; when the second cannot
  write what the first wrote, it is LOST, as in ``emit``;
* ``emit``: the first, then the second. The Bliss 2 side follows the 1.x side: when it cannot
  take points the 1.x side took, it is LOST (``give_up``; FAULT, closed by End) and the command
  still succeeds, so that a client's retry never writes the 1.x points twice;
* ``end`` / ``abort``: both (each closed even when the other fails; the first error's reason is
  raised, its message saying what became of each side);
* ``create_group``: both groups' scans are checked before either is written.

Notifications: the first model's reach the owner (with the key of the Bliss 2 sequence in
``SequenceStarted``); of the second's, only what it adds to the picture: its state merged into
one ``StateChanged`` (FAULT when either side fails, the status says which) and its pending
numbers merged into ``PendingChanged``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING, Any

from ..scanning.scan import ScanState
from .notifications import (
    Notification,
    NotificationCallback,
    PendingChanged,
    SequenceStarted,
    StateChanged,
)
from .requests import (
    DUPLICATE_SCAN,
    SCAN_KEY_PREFIX,
    ManagerError,
    StartRequest,
    parse_group_request,
    parse_scan_reference,
)
from .states import Phase

if TYPE_CHECKING:  # built by the device's configuration; blissdata is imported there
    from .bliss2_manager import Bliss2Manager
    from .manager import Manager

__all__ = ["BothManager"]

logger = logging.getLogger(__name__)


class BothManager:
    """``first`` (1.x) and ``second`` (Bliss 2) as one manager; see the module docstring. Build
    them with ``on_change=both.from_first`` / ``both.from_second`` (``attach``)."""

    def __init__(self, on_change: NotificationCallback) -> None:
        self.on_change = on_change
        self._merge = threading.Lock()  # serialises the merged notifications
        self._states: dict[str, StateChanged] = {}
        self._pending: dict[str, tuple[int, ...]] = {"first": (), "second": ()}
        self._key = ""
        self.first: Manager
        self.second: Bliss2Manager

    def attach(self, first: Manager, second: Bliss2Manager) -> BothManager:
        self.first, self.second = first, second
        return self

    # -- notifications -------------------------------------------------------------------------
    def from_first(self, notification: Notification) -> None:
        with self._merge:
            match notification:
                case StateChanged():
                    self._state("first", notification)
                case PendingChanged(numbers):
                    self._pending_of("first", numbers)
                case SequenceStarted():
                    self.on_change(dataclasses.replace(notification, key=self._key))
                case _:
                    self.on_change(notification)

    def from_second(self, notification: Notification) -> None:
        with self._merge:
            match notification:
                case StateChanged():
                    self._state("second", notification)
                case PendingChanged(numbers):
                    self._pending_of("second", numbers)
                case SequenceStarted(key=key):
                    self._key = key  # shown with the first's SequenceStarted, which follows

    def _state(self, side: str, state: StateChanged) -> None:
        self._states[side] = state
        first, second = self._states.get("first"), self._states.get("second")
        if first is None or second is None:
            return  # both report their state when they open
        failing = [(name, each) for name, each in (("", first), ("Bliss 2: ", second))
                   if not each.connected or each.phase is Phase.LOST]
        phase = Phase.LOST if any(each.phase is Phase.LOST for _, each in failing) else (
            first.phase if first.phase is not Phase.IDLE else second.phase)
        status = " ".join(f"{name}{each.status}" for name, each in failing) or first.status
        self.on_change(StateChanged(phase, first.connected and second.connected, status))

    def _pending_of(self, side: str, numbers: tuple[int, ...]) -> None:
        self._pending[side] = numbers
        self.on_change(PendingChanged(tuple(sorted({*self._pending["first"],
                                                    *self._pending["second"]}))))

    # -- life cycle ----------------------------------------------------------------------------
    def open(self, health_period: float) -> None:
        self.second.open(health_period)
        self.first.open(health_period)

    def close(self) -> None:
        self.first.close()
        self.second.close()

    def release(self) -> None:
        self.first.release()
        self.second.release()

    # -- commands ------------------------------------------------------------------------------
    def start(self, request: StartRequest) -> str:
        self.second.start(request)
        try:
            return self.first.start(request)
        except ManagerError:
            self._close_second(ScanState.KILLED)
            raise

    def add_scan(self, text: str) -> str:
        reference = parse_scan_reference(text)
        if isinstance(reference, str):
            side = self.second if reference.startswith(SCAN_KEY_PREFIX) else self.first
            return side.add_scan(text)
        writes, held = [], []
        followed = self.second.phase is Phase.RUNNING  # a lost Bliss 2 side takes no more
        for side in (self.first, self.second) if followed else (self.first,):
            try:
                writes.append(side.plan_add(reference))  # checks: nothing written yet
            except ManagerError as error:
                if error.reason != DUPLICATE_SCAN:
                    raise  # refused by either side: nothing written in either model
                held.append(error)  # a side that holds it already (a repeated command)
        if not writes:
            raise held[0]
        result = writes[0]()
        for write in writes[1:]:  # the Bliss 2 side, after the 1.x side wrote: see emit
            try:
                write()
            except ManagerError as error:
                self.second.give_up(f"it missed scan {reference}, which the 1.x sequence "
                                    f"took ({error.message})")
        return result

    def emit(self, channel: str, data: Any, flat: bool = False) -> int:
        written = self.first.emit(channel, data, flat)
        if self.second.phase is Phase.RUNNING:
            try:
                self.second.emit(channel, data, flat)
            except ManagerError as error:
                self.second.give_up(f"it missed points the 1.x sequence took ({error.message})")
        return written

    def end(self, state: ScanState | None = None) -> str:
        """Both sides, each ended even when the other fails; a failure (one side LOST, scans
        not finished...) is raised with what became of each side."""
        running = [side for side in (self.first, self.second) if side.phase is not Phase.IDLE]
        if not running:
            return self.first.end(state)  # its refusal: NotRunning
        final, errors, outcomes = None, [], []
        for side in running:
            model = "1.x" if side is self.first else "Bliss 2"
            name = side.sequence_name
            try:
                result = side.end(state)
            except ManagerError as error:
                errors.append(error)
                outcomes.append(f"{model}: {error.message}")
            else:
                final = result if final is None or side is self.first else final
                outcomes.append(f"{model}: sequence {name} ended {result}.")
        if errors and len(running) > 1:
            raise ManagerError(errors[0].reason, " ".join(outcomes))
        if errors:
            raise errors[0]
        return final

    def abort(self) -> str:
        return self.end(ScanState.USER_ABORTED)

    def _close_second(self, state: ScanState) -> None:
        try:
            self.second.end(state)
        except ManagerError as error:
            logger.warning("Bliss 2 sequence %s left to its recovery: %s",
                           self.second.sequence_name, error.message)

    def create_group(self, request: str) -> str:
        """The 1.x group of the numbers and db_names, the Bliss 2 group of the numbers and keys;
        every scan of both is checked before either is written. Returns the 1.x db_name (the
        Bliss 2 group alone when only keys are given)."""
        references, title, scan_info = parse_group_request(request)
        keys = [ref for ref in references
                if isinstance(ref, str) and ref.startswith(SCAN_KEY_PREFIX)]
        first_refs = [ref for ref in references if ref not in keys]
        second_refs = [ref for ref in references if isinstance(ref, int) or ref in keys]
        first = self.first.group_members(first_refs) if first_refs else None
        second = self.second.group_members(second_refs) if second_refs else None
        name = self.second.write_group(second, title, scan_info) if second else ""
        return self.first.write_group(first, title, scan_info) if first else name
