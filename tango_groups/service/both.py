"""``BothService``: one sequence written in both data models at once (``DataFormat both``).

It is composed, through the ``SequenceService`` interface only, of two services built by the
factories it is given: the *first* writes Bliss 1.x data nodes (its db_name is what ``Start``
returns and what the device shows), the *second* Bliss 2 scans (its key is the sequence's
``ScanKey``), each referencing the scans of its own generation:

* ``start``: the Bliss 2 sequence, then the 1.x one (a 1.x refusal closes the Bliss 2 one again);
* ``add_scan``: a number goes to both (the 1.x scan of that number in the container, the Bliss 2
  scan of that number in the session: each may be pending on its own); a db_name to the first
  only, a Bliss 2 key to the second only. Both sides check a number (``plan_add``) before either
  writes: a refusal of either writes nothing in both. A number one model already holds (added
  by db_name or key) is added to the other only;
* ``emit``: the first, then the second;
* ``end`` / ``abort``: both (each closed even when the other fails; the first error's reason is
  raised, its message saying what became of each side);
* ``create_group``: both groups' scans are checked (``plan_group``) before either is written.

Faults: when Redis fails the second side's write of what the first wrote (emit, add_scan: no
answer, or an error; the second side refuses with ``RedisUnavailable``), the request is
*half-done*: it is refused with that error and remembered (``_HalfDone``: its ``RetryKey``, as
``retries`` builds them). Before any other sequence command (emit, add_scan, end, abort) the
second side writes it again (its own retry logic finds whether its failed write landed: nothing
twice), so that both models hold what the client sent, in the order sent; a client repeating
exactly that request then gets the first side's answer without a second write there. While the
second cannot write it, those commands are refused (``RedisUnavailable``, writing nothing): as
with one model, the sequence goes on once Redis answers (also after a restart with its data).
The second side is LOST (``give_up``; FAULT, closed by End) only when it refuses for another
reason (its sequence gone from Redis, its lease lost), or when it was LOST already: the command
then succeeds with the 1.x side alone.

Notifications: the first model's reach the owner (with the key of the Bliss 2 sequence in
``SequenceStarted``); of the second's, only what it adds to the picture: its state merged into
one ``StateChanged`` (FAULT when either side fails, the status says which) and its pending
numbers merged into ``PendingChanged``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy

from ..scanning.scan import ScanState
from .notifications import (
    Notification,
    NotificationCallback,
    PendingChanged,
    SequenceStarted,
    StateChanged,
)
from .protocol import SequenceService, ServiceFactory, Write
from .reasons import ManagerError, Reason
from .requests import SCAN_KEY_PREFIX, StartRequest, parse_group_request, parse_scan_reference
from .retries import Points, RetryKey, RetryKind
from .states import Phase

__all__ = ["BothService"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class _Side:
    """One of the two services, with what it last reported of its state and pending numbers."""

    model: str  # as the merged messages name it
    service: SequenceService
    state: StateChanged | None = None
    pending: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class _HalfDone:
    """A request the first side wrote and the second could not (see the module docstring)."""

    key: RetryKey  # the request, to recognise a client repeating it
    redo: Callable[[], object]  # the second side's write of it
    answer: Any  # what the command answers (the first side's answer)
    what: str  # what the second side misses, for messages


class BothService:
    """The services ``first`` (1.x) and ``second`` (Bliss 2) build, as one; see the module
    docstring."""

    def __init__(self, first: ServiceFactory, second: ServiceFactory,
                 on_change: NotificationCallback) -> None:
        self.on_change = on_change
        self._merge = threading.Lock()  # serialises the merged notifications
        self._key = ""  # the second's sequence key, shown with the first's SequenceStarted
        self._first = _Side("1.x", first(self._from_first))
        self._second = _Side("Bliss 2", second(self._from_second))
        self.first, self.second = self._first.service, self._second.service
        self._half: _HalfDone | None = None

    @property
    def phase(self) -> Phase:
        return self.first.phase

    @property
    def sequence_name(self) -> str:
        return self.first.sequence_name

    def status(self) -> str:
        return self.first.status()

    # -- notifications -------------------------------------------------------------------------
    def _from_first(self, notification: Notification) -> None:
        with self._merge:
            match notification:
                case StateChanged():
                    self._state(self._first, notification)
                case PendingChanged(numbers):
                    self._pending(self._first, numbers)
                case SequenceStarted():
                    self.on_change(dataclasses.replace(notification, key=self._key))
                case _:
                    self.on_change(notification)

    def _from_second(self, notification: Notification) -> None:
        with self._merge:
            match notification:
                case StateChanged():
                    self._state(self._second, notification)
                case PendingChanged(numbers):
                    self._pending(self._second, numbers)
                case SequenceStarted(key=key):
                    self._key = key  # shown with the first's SequenceStarted, which follows

    def _state(self, side: _Side, state: StateChanged) -> None:
        side.state = state
        first, second = self._first.state, self._second.state
        if first is None or second is None:
            return  # both report their state when they open
        failing = [(name, each) for name, each in (("", first), (f"{self._second.model}: ", second))
                   if not each.connected or each.phase is Phase.LOST]
        phase = Phase.LOST if any(each.phase is Phase.LOST for _, each in failing) else (
            first.phase if first.phase is not Phase.IDLE else second.phase)
        status = " ".join(f"{name}{each.status}" for name, each in failing) or first.status
        self.on_change(StateChanged(phase, first.connected and second.connected, status))

    def _pending(self, side: _Side, numbers: tuple[int, ...]) -> None:
        side.pending = numbers
        self.on_change(PendingChanged(tuple(sorted({*self._first.pending,
                                                    *self._second.pending}))))

    # -- life cycle ----------------------------------------------------------------------------
    def open(self, health_period: float) -> None:
        self.second.open(health_period)
        self.first.open(health_period)

    def close(self) -> None:
        self._half = None  # the sequences are closed: what the second missed stays missed
        self.first.close()
        self.second.close()

    def release(self) -> None:
        self.first.release()
        self.second.release()

    # -- commands ------------------------------------------------------------------------------
    def start(self, request: StartRequest) -> str:
        self.second.start(request)
        try:
            return self.first.start(dataclasses.replace(request, path=None))  # Bliss 2's file
        except ManagerError:
            self._close_second(ScanState.KILLED)
            raise

    def add_scan(self, text: str) -> str:
        return self.plan_add(parse_scan_reference(text))()

    def plan_add(self, reference: int | str) -> Write:
        """A db_name goes to the first, a key to the second; a number is planned on both (a side
        that holds it already is left out): a refusal of either writes nothing. The write
        writes the first side, then the second (``_follow``)."""
        key = RetryKey(RetryKind.ADD, reference)
        repeated = self._caught_up(key)
        if repeated is not None:  # the first side holds it
            return lambda: repeated.answer
        if isinstance(reference, str):
            side = self.second if reference.startswith(SCAN_KEY_PREFIX) else self.first
            return side.plan_add(reference)
        writes: dict[SequenceService, Write] = {}
        held: list[ManagerError] = []
        followed = self.second.phase is Phase.RUNNING  # a lost Bliss 2 side takes no more
        for side in (self.first, self.second) if followed else (self.first,):
            try:
                writes[side] = side.plan_add(reference)  # checks: nothing written yet
            except ManagerError as error:
                if error.reason is not Reason.DUPLICATE_SCAN:
                    raise  # refused by either side: nothing written in either model
                held.append(error)  # a side that holds it already (added by db_name or key)
        if not writes:
            raise held[0]
        first, second = writes.get(self.first), writes.get(self.second)
        if first is None:
            return second

        def write() -> str:
            result = first()
            if second is not None:
                self._follow(_HalfDone(key, lambda: self.second.plan_add(reference)(), result,
                                       f"scan {reference}"))
            return result

        return write

    def emit(self, channel: str, data: Any, flat: bool = False) -> int:
        """The points to the first side, then to the second (``_follow``)."""
        key = RetryKey(RetryKind.EMIT, (channel, flat), Points(numpy.asarray(data)))
        repeated = self._caught_up(key)
        if repeated is not None:  # the first side holds them
            return repeated.answer
        written = self.first.emit(channel, data, flat)
        if self.second.phase is Phase.RUNNING:
            self._follow(_HalfDone(key, lambda: self.second.emit(channel, data, flat), written,
                                   f"points of channel {channel!r}"))
        return written

    def _follow(self, half: _HalfDone) -> None:
        """The second side writes what the first wrote: half-done until it did."""
        self._half = half
        self._catch_up()

    def _caught_up(self, key: RetryKey) -> _HalfDone | None:
        """``_catch_up``; the half-done request when ``key`` repeats it (its answer is the
        command's, with no second write on the first side)."""
        half = self._half
        self._catch_up()
        return half if half is not None and half.key == key else None

    def _catch_up(self) -> None:
        """The second side writes the half-done request, if any (refused while Redis fails it:
        nothing else is written meanwhile); LOST when it refuses it otherwise."""
        half, self._half = self._half, None
        if half is None or self.second.phase is not Phase.RUNNING:
            return
        try:
            half.redo()
        except ManagerError as error:
            if error.reason is Reason.REDIS_UNAVAILABLE:
                self._half = half
                raise ManagerError(error.reason, f"{self._second.model}: {error.message} Its "
                                   f"sequence misses {half.what}, which the 1.x sequence took: "
                                   "repeat the command once Redis answers (any command on the "
                                   "sequence first writes what it misses).") from None
            if error.reason is not Reason.DUPLICATE_SCAN:  # a scan it holds: done
                self.second.give_up(f"it missed {half.what}, which the 1.x sequence took "
                                    f"({error.message})")

    def end(self, state: ScanState | None = None) -> str:
        """Both sides, each ended even when the other fails; a failure (one side LOST, scans
        not finished...) is raised with what became of each side. The second side first writes
        what it has not taken yet (``_catch_up``)."""
        self._catch_up()
        running = [side for side in (self._first, self._second)
                   if side.service.phase is not Phase.IDLE]
        if not running:
            return self.first.end(state)  # its refusal: NotRunning
        final, errors, outcomes = None, [], []
        for side in running:
            name = side.service.sequence_name
            try:
                result = side.service.end(state)
            except ManagerError as error:
                errors.append(error)
                outcomes.append(f"{side.model}: {error.message}")
            else:
                final = result if final is None or side is self._first else final
                outcomes.append(f"{side.model}: sequence {name} ended {result}.")
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

    def give_up(self, why: str) -> None:
        self._half = None
        self.first.give_up(why)
        self.second.give_up(why)

    def create_group(self, request: str) -> str:
        references, title, scan_info = parse_group_request(request)
        return self.plan_group(references, title, scan_info)()

    def plan_group(self, references: list[int | str], title: str | None,
                   scan_info: dict[str, Any]) -> Write:
        """The 1.x group of the numbers and db_names, the Bliss 2 group of the numbers and keys;
        every scan of both is checked before either is written. The write returns the 1.x
        db_name (the Bliss 2 group's key when only keys are given)."""
        keys = [ref for ref in references
                if isinstance(ref, str) and ref.startswith(SCAN_KEY_PREFIX)]
        first_refs = [ref for ref in references if ref not in keys]
        second_refs = [ref for ref in references if isinstance(ref, int) or ref in keys]
        first = self.first.plan_group(first_refs, title, scan_info) if first_refs else None
        second = self.second.plan_group(second_refs, title, scan_info) if second_refs else None

        def write() -> str:
            name = second() if second else ""
            return first() if first else name

        return write
