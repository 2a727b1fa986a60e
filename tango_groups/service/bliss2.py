"""``Bliss2Service``: the sequence service in the Bliss 2 data model (``DataFormat bliss2``).

The commands of ``bliss1.Bliss1Service`` over the same ``core``, written through blissdata 2.x
(``tango_groups.bliss2``): sequences and groups are sequence scans, references go by key or by
number (the session's scan, pending until PREPARED: ``bliss2.pending``). Every Redis request and
every wait on blissdata's stream sinks gives up after ``RedisTimeout``
(``bliss2.store.bounded``); a failed write of the running sequence leaves it LOST (blissdata
2.4.5's stream writers cannot go on), End or Abort then closes it once Redis answers. A sequence
a previous run left open is closed at start; a running one is LOST when Redis restarts. The
documentation (docs/bliss.rst, "Bliss 2") tells the whole contract.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy
from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.scan import ScanState as Bliss2State
from blissdata.redis_engine.store import DataStore

from ..bliss2 import (
    SequenceScan,
    SessionCounter,
    bounded,
    close_left_open,
    custom_stream_name,
    ensure_set_up,
    scan_of_number,
    store_client,
    stream_tails,
)
from ..bliss2.groups import write_group
from ..bliss2.pending import Awaited
from ..bliss2.scan import END_REASONS
from ..data import running
from ..data.connection import RedisConnectionError, RedisError, probe, run_id
from ..data.counters import CounterUnavailable, Numbers
from ..scanning.scan import ScanState
from ..session import Session
from .core import ServiceCore
from .messages import NEUTRAL, Names, scans_never_started
from .notifications import (
    NotificationCallback,
    PendingChanged,
    PointsWritten,
    ScansAdded,
    SequenceEnded,
    SequenceStarted,
)
from .protocol import Write
from .reasons import ManagerError, Reason
from .requests import (
    SCAN_KEY_PREFIX,
    StartRequest,
)
from .states import Command, Phase, Transition, transition

__all__ = ["Bliss2Service"]

logger = logging.getLogger(__name__)

WRITERS_GONE = "blissdata's stream writers cannot go on after that."


class Bliss2Service(ServiceCore):
    """One Bliss 2 sequence at a time in ``session.name``; see the module docstring.

    ``store`` writes (its requests fail after ``timeout``); ``watch_store`` follows pending
    scans (its socket timeout must exceed ``block``); ``session.client`` keeps the running
    record (next to the 1.x data of the same Redis). ``counter`` gives the numbers (Bliss's own
    counter, or else ``bliss2.store.next_number``'s).
    """

    def __init__(self, session: Session, redis_url: str, *, owner: str, store: DataStore,
                 watch_store: DataStore, timeout: float, end_timeout: float = 1.5,
                 block: float = 0.5, on_change: NotificationCallback = lambda _: None,
                 names: Names = NEUTRAL, counter: Numbers | None = None) -> None:
        super().__init__(session, redis_url, owner=f"{owner}#bliss2", recovery="close",
                         on_change=on_change, names=names)
        self.store, self.watch_store = store, watch_store
        self.counter = counter or SessionCounter(store, session.name)
        self.timeout, self.end_timeout, self.block = timeout, end_timeout, block
        self._sequence: SequenceScan | None = None
        self._specs, self._keys = {}, []  # the custom channels; the keys referenced, in order
        self._shown: dict[str, int] = {}  # points notified, by channel
        self._awaited: dict[int, Awaited] = {}
        self._settled = threading.Condition(self._lock)  # notified when nothing is awaited
        self._server = ""  # the run_id of the Redis the writers are connected to
        self._closing = ""  # what closing a LOST sequence did (End's answer says it)
        self.state, self.sequence_name, self.sequence_number = ScanState.IDLE, "", 0
        self._counted_in = f"session {session.name}"

    @property
    def pending(self) -> tuple[int, ...]:
        return tuple(self._awaited)

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the threads; a running sequence is closed (FAILURE), or else by the next run."""
        self._stop_health()
        with self._lock:
            if self.phase is not Phase.IDLE:
                try:
                    self._finish(ScanState.KILLED)
                except ManagerError as error:
                    logger.warning("sequence %s left open: %s", self.sequence_name, error)
                    self._forget_awaited()
            self._silence()

    def release(self) -> None:
        """Give the lease up and close the Redis clients (after ``close``)."""
        self._release_lease()
        for client in (self.session, store_client(self.store), store_client(self.watch_store)):
            client.close()

    # -- what the core asks of the model --------------------------------------------------------
    LEASE_EACH_COMMAND = True

    def _abandon(self) -> None:
        self._forget_awaited()

    def _probe(self, name: str | None) -> bool:
        """Also: a Redis that restarted (a new ``run_id``) or refuses connections took the
        running sequence's stream writers with it: LOST at once, rather than at its next write."""
        client = store_client(self.store)
        try:
            exists, server = probe(client, name), run_id(client)
        except RedisConnectionError as error:
            self.give_up(f"Redis went down ({error}): {WRITERS_GONE}")
            raise
        if self._server not in ("", server):
            self.give_up(f"Redis restarted: {WRITERS_GONE}")
        self._server = server
        return exists

    def _resync_open(self) -> None:
        if not self._redis(lambda: self._probe(self._sequence.key)):
            self._sequence_lost()

    def _left_open(self, record: running.RunningRecord) -> None:
        """Close it (never resumed)."""
        try:
            if self._redis(lambda: close_left_open(self.store, record.db_name)):
                logger.warning("closed sequence %s left open by a previous run", record.db_name)
        except ScanNotFoundError:
            pass  # expired or deleted meanwhile: nothing to close
        self._redis(lambda: running.clear(self.session.client, self._record_key))

    # -- commands ------------------------------------------------------------------------------
    def start(self, request: StartRequest) -> str:
        """Create the sequence scan (STARTED) and return its key."""
        with self._lock:
            self._begin(Command.START)
            number = self._redis(self._next_number)
            self._server = self._redis(lambda: run_id(store_client(self.store)))
            title = request.title if request.title is not None else "sequence_of_scans"
            channels = tuple(request.channels)
            self._specs = {spec.name: spec for spec in channels}
            record = tuple(self._channel_json())
            try:
                sequence = self._redis(lambda: SequenceScan(
                    self.store, session=self.session.name, number=number, title=title,
                    scan_info=request.scan_info, channels=channels, on_created=lambda key: (
                        running.save(self.session.client, self._record_key,
                                     running.RunningRecord(key, record)))))
            except ManagerError:
                self._recovered = False  # a record may be left: close it once Redis answers
                raise
            self._sequence, self._keys, self._shown = sequence, [], {}
            self.phase = transition(self.phase, Transition.STARTED)
            self.state, self.sequence_name, self.sequence_number = (
                ScanState.STARTING, sequence.key, number)
            self._notify_state()
            self._notify(SequenceStarted(sequence.key, number, title, self.state, channels,
                                         dict(sequence.scan.info), key=sequence.key))
            return sequence.key

    def _next_number(self, last: bool = False) -> int:
        """The next number (``last``: the last given), once the db is set up again if Redis lost
        everything (blissdata needs its index); a failing ``counter`` refuses."""
        ensure_set_up(self.store)
        try:
            return self.counter.last() if last else self.counter.next()
        except CounterUnavailable as error:
            raise ManagerError(Reason.REDIS_UNAVAILABLE, f"{error}: check that it runs, or empty "
                               f"{self.names.settings_redis_url}") from None

    def plan_add(self, reference: int | str) -> Write:
        """Every check of ``add_scan`` (a refusal writes nothing); returns the write, which
        returns what ``add_scan`` does."""
        with self._lock:
            self._begin(Command.ADD)
            if isinstance(reference, int):
                key, since = self._find_number(reference)
                if key is None:  # not created yet: one far beyond the counter is named
                    last = self._redis(lambda: self._next_number(last=True))
                    return lambda: self._await(reference, since=since, key=None, last=last)
            else:
                key = self._checked_key(reference)
            scan = self._lookup(lambda: self.store.load_scan(key))
            number = self._not_pending(int(scan.number))
            if scan.state < Bliss2State.PREPARED:
                return lambda: self._await(number, since=None, key=key)
            return lambda: self._reference(key, number)

    def _find_number(self, number: int) -> tuple[str | None, str]:
        """The key of scan ``number`` of the session (None: not created yet) and the moment of
        the search (to follow new scans from)."""
        self._not_itself(number)
        self._not_pending(number)
        key, since = self._redis(lambda: scan_of_number(self.store, self.session.name, number))
        if key in self._keys:
            raise ManagerError(Reason.DUPLICATE_SCAN,
                               f"scan {number} is already in sequence {self.sequence_name}")
        return key, since

    def _checked_key(self, key: str) -> str:
        if not key.startswith(SCAN_KEY_PREFIX):
            raise ManagerError(Reason.UNKNOWN_SCAN,
                               f"{key!r} is not a Bliss 2 scan key: DataFormat "
                               f"bliss2 takes {SCAN_KEY_PREFIX}<id> or numbers")
        self._not_itself(key)
        if key in self._keys:
            raise ManagerError(Reason.DUPLICATE_SCAN, f"{key} is in sequence {self.sequence_name}")
        return key

    def _lookup(self, action: Any) -> Any:
        try:
            return self._redis(action)
        except ScanNotFoundError as error:
            raise ManagerError(Reason.UNKNOWN_SCAN,
                               f"{error} (expired, deleted, never written)") from None

    def _await(self, number: int, *, since: str | None, key: str | None,
               last: int | None = None) -> str:
        with self._lock:
            if last is not None:
                self._note_far(number, last)
            self._awaited[number] = Awaited(self.watch_store, self.session.name, number,
                                            since=since or "0-0", key=key, ready=self._ready,
                                            failed=self._await_failed, block=self.block)
            self._pending_changed()
            return f"pending:{number}"

    def _ready(self, number: int, key: str) -> None:
        """(An ``Awaited`` thread) scan ``number`` is PREPARED: reference it."""
        with self._lock:
            awaited = self._awaited.pop(number, None)
            if awaited is None or self.phase is not Phase.RUNNING:
                return
            try:
                if key not in self._keys:
                    self._reference(key, number)
            except ManagerError as error:
                logger.warning("scan %s could not be referenced: %s", number, error.message)
            self._pending_changed()

    def _await_failed(self, number: int, error: Exception) -> None:
        with self._lock:
            if self._awaited.get(number) is None:
                return
            if isinstance(error, RedisError):
                self._unreachable(error)
            else:
                logger.warning("pending scan %s vanished: %s", number, error)
            self._awaited.pop(number)
            self._pending_changed()

    def _pending_changed(self) -> None:
        numbers = self.pending
        self._notify(PendingChanged(numbers))
        self._notify_state()  # the status names what is awaited
        if not numbers:
            self._settled.notify_all()
        try:
            self._redis(lambda: self._save_record(numbers))
        except ManagerError as error:
            logger.warning("running record not updated: %s", error.message)

    def _reference(self, key: str, number: int) -> str:
        with self._lock:
            sequence = self._sequence
            self._written(lambda: (sequence.add_scan(key, number), sequence.flush(self.timeout)))
            self._keys.append(key)
            self._notify(ScansAdded((number,), (key,)))
            return key

    def _written(self, write: Any) -> None:
        """Run a write of the running sequence, once the lease is checked (blissdata's writes
        are not fenced); a failure leaves it LOST (see the docstring)."""
        self._check_lease()
        try:
            self._redis(write)
        except ManagerError:
            self.give_up(f"Writing it failed (Redis did not answer): {WRITERS_GONE}")
            raise

    def emit(self, channel: str, data: Any, flat: bool = False) -> int:
        """Append points to a custom channel; returns the number of points written."""
        with self._lock:
            self._begin(Command.EMIT)
            block = self._points(channel, data, flat)
            if len(block):
                sequence = self._sequence
                self._written(lambda: (sequence.emit(channel, block),
                                       sequence.flush(self.timeout)))
                self._shown[channel] = self._shown.get(channel, 0) + len(block)
                self._notify(PointsWritten(channel, block))
            return len(block)

    def end(self, state: ScanState | None = None) -> str:
        """Close the sequence (after waiting up to ``end_timeout`` for pending scans, unless a
        state is forced); returns the final state's name."""
        with self._lock:
            self._begin(Command.END)
            if state is None and self.phase is Phase.RUNNING:
                self._settled.wait_for(lambda: not self._awaited, self.end_timeout)
            if self.phase is Phase.IDLE:
                raise ManagerError(Reason.NOT_RUNNING, "the sequence was ended meanwhile")
            lost = self.lost_message if self.phase is Phase.LOST else ""
            unfinished = sorted(self._awaited)
            final = self._finish(state or (ScanState.KILLED if lost else ScanState.DONE))
            if lost:
                raise ManagerError(Reason.SEQUENCE_LOST, f"{lost} {self._closing}")
            if unfinished and state is None:
                raise scans_never_started(self.sequence_name, final.name, unfinished,
                                          self.end_timeout, self.names)
            return final.name

    def _finish(self, state: ScanState) -> ScanState:
        """Close the sequence in Redis and go IDLE (the phase stays when Redis fails)."""
        sequence, reason = self._sequence, END_REASONS[state.name]
        self._check_lease()
        if self.phase is Phase.LOST:  # its writers are gone: close it from a fresh load
            try:
                self._redis(lambda: close_left_open(self.store, sequence.key, reason))
                self._landed_late(sequence.key)
                self._closing = f"It is closed now ({reason})."
            except ScanNotFoundError:
                self._closing = "Redis holds nothing of it to close."
        else:
            self._written(lambda: bounded(lambda: sequence.end(reason), self.timeout))
        self._forget_awaited()
        self._clear_record()
        self.phase = transition(self.phase, Transition.ENDED)
        self.state, self._sequence = state, None
        self._notify(PendingChanged(()))
        self._notify_state()
        self._notify(SequenceEnded(state, dict(sequence.scan.info)))
        return state

    def _landed_late(self, key: str) -> None:
        """Points a write that gave up left in Redis after all (it was on the socket when Redis
        froze): shown as well, so that the device shows what blissdata's readers read."""
        starts = {custom_stream_name(name): self._shown.get(name, 0) for name in self._specs}
        tails = self._redis(lambda: stream_tails(self.store, key, starts))
        for name, spec in self._specs.items():
            tail = tails.get(custom_stream_name(name))
            if tail is not None:
                self._notify(PointsWritten(name, numpy.asarray(tail, dtype=spec.dtype)))

    def _forget_awaited(self) -> None:
        for awaited in self._awaited.values():
            awaited.cancel()
        self._awaited.clear()

    # -- groups ----------------------------------------------------------------------------------
    def plan_group(self, references: list[int | str], title: str | None,
                   scan_info: dict[str, Any]) -> Write:
        """The (key, number) of each scan a group is asked for, found before anything is written
        (``UnknownScan``, ``DuplicateScan``); the write returns the group's key."""
        with self._lock:
            self._sync()
            self._redis(lambda: ensure_set_up(self.store))
            found: list[tuple[str, int]] = []
            for reference in references:
                if isinstance(reference, int):
                    key, _ = self._redis(lambda n=reference: scan_of_number(
                        self.store, self.session.name, n))
                    if key is None:
                        raise ManagerError(Reason.UNKNOWN_SCAN, f"no scan number {reference} "
                                           f"in session {self.session.name}")
                else:
                    key = reference if reference.startswith(SCAN_KEY_PREFIX) else (
                        self._checked_key(reference))  # raises: not a Bliss 2 key
                scan = self._lookup(lambda k=key: self.store.load_scan(k))
                found.append((key, int(scan.number)))
            if len({key for key, _ in found}) != len(found):
                raise ManagerError(Reason.DUPLICATE_SCAN, "a scan is listed twice")
        return lambda: self._write_group(found, title, scan_info)

    def _write_group(self, members: list[tuple[str, int]], title: str | None,
                     scan_info: dict[str, Any]) -> str:
        with self._lock:
            number = self._redis(self._next_number)
            return self._redis(lambda: write_group(self.store, self.session.name, number,
                                                   members, title, scan_info, self.timeout))
