"""``Bliss2Service``: the sequence service in the Bliss 2 data model (``DataFormat bliss2``).

The commands of ``bliss1.Bliss1Service`` over the same ``core``, written through blissdata 2.x
(``tango_groups.bliss2``): sequences and groups are sequence scans, references go by key or by
number (the session's scan, pending until PREPARED: ``bliss2.pending``). Every write is in Redis
when the command answers (``bliss2.streams``) and every request gives up after ``RedisTimeout``.
As in 1.x, a failure leaves the sequence running, re-read before the next write (what landed of
a write that got no answer is found: a client's retry writes nothing twice), so it goes on once
Redis is back, also after a restart with its data; a Redis that lost it leaves it LOST. A
sequence a previous run left open is closed, or resumed with its sub-scans, points and pending
numbers (``RecoveryMode resume``). docs/bliss.rst, "Bliss 2", tells the whole contract.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.scan import Scan
from blissdata.redis_engine.scan import ScanState as Bliss2State
from blissdata.redis_engine.store import DataStore

from ..bliss2 import (
    SUBSCANS,
    SequenceScan,
    SessionCounter,
    close_left_open,
    custom_stream_name,
    ensure_set_up,
    store_client,
    stream_tails,
)
from ..bliss2.groups import write_group
from ..bliss2.h5maps import Entry, Saving, saved_entry
from ..bliss2.pending import PendingScans
from ..bliss2.scan import END_REASONS
from ..data import running
from ..data.channel import ChannelSpec
from ..data.connection import probe
from ..data.counters import CounterUnavailable, Numbers
from ..scanning.scan import ScanState
from ..session import Session
from .bliss2_scans import Bliss2Scans
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
from .requests import StartRequest, channel_json, parse_channel
from .retries import Points, RetryKey, RetryKind
from .states import Command, Phase, Transition, transition

__all__ = ["Bliss2Service"]

logger = logging.getLogger(__name__)

FINAL_STATES = {reason: ScanState[name] for name, reason in END_REASONS.items()}  # by end_reason


class Bliss2Service(ServiceCore):
    """One Bliss 2 sequence at a time in ``session.name``; see the module docstring.

    ``store`` writes (its requests fail after RedisTimeout); ``watch_store`` follows pending
    scans (its socket timeout must exceed ``block``); ``session.client`` keeps the running
    record (next to the 1.x data of the same Redis). ``counter`` gives the numbers (Bliss's own
    counter, or else ``bliss2.store.next_number``'s).
    """

    def __init__(self, session: Session, redis_url: str, *, owner: str, store: DataStore,
                 watch_store: DataStore, end_timeout: float = 1.5, block: float = 0.5,
                 recovery: str = "close", on_change: NotificationCallback = lambda _: None,
                 names: Names = NEUTRAL, saving: Saving | None = None,
                 counter: Numbers | None = None) -> None:
        super().__init__(session, redis_url, owner=f"{owner}#bliss2", recovery=recovery,
                         on_change=on_change, names=names)
        self.store, self.watch_store = store, watch_store
        self.end_timeout, self.block = end_timeout, block
        self.saving = saving or Saving(session.base_path)  # the HDF5 file of a sequence, group
        self.counter = counter or SessionCounter(store, session.name)
        self._scans = Bliss2Scans(store, session.name, self._redis)
        self._sequence: SequenceScan | None = None
        self._specs: dict[str, ChannelSpec] = {}  # the custom channels
        self._awaiting = PendingScans(watch_store, session.name, self._lock, block=block,
                                      reference=self._referenced, unreachable=self._unreachable,
                                      changed=self._pending_changed)
        self._closing = ""  # what closing a LOST sequence did (End's answer says it)
        self.state, self.sequence_name, self.sequence_number = ScanState.IDLE, "", 0
        self._counted_in = f"session {session.name}"

    @property
    def pending(self) -> tuple[int, ...]:
        return self._awaiting.numbers

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
                    self._awaiting.cancel()
            self._silence()

    def release(self) -> None:
        """Give the lease up and close the Redis clients (after ``close``)."""
        self._release_lease()
        for client in (self.session, store_client(self.store), store_client(self.watch_store)):
            client.close()

    # -- what the core asks of the model --------------------------------------------------------
    LEASE_EACH_COMMAND = True

    def _abandon(self) -> None:
        self._awaiting.cancel()

    def _probe(self, name: str | None) -> bool:
        return probe(store_client(self.store), name)

    def _resync_open(self) -> None:
        """What Redis holds of the open sequence: points and sub-scans that landed after all
        are shown; a stream shorter than written (a restart lost its end) leaves it LOST."""
        sequence = self._sequence
        if not self._redis(lambda: self._probe(sequence.key)):
            self._sequence_lost()
            return
        keys = len(sequence.keys)
        landed = self._redis(sequence.resync)
        if any(count < 0 for count in landed.values()):
            return self._lose(f"Redis lost points of sequence {self.sequence_name} (restarted "
                              "from older data?). End or Abort, then Start a new sequence.")
        self._show_new(keys, landed)
        if sequence.state is Bliss2State.CLOSED:  # an End or Abort landed after all
            self._clear_record()
            return self._ended(FINAL_STATES.get(sequence.scan.info.get("end_reason"),
                                                ScanState.KILLED))
        self._retries.found(sequence.keys[keys:] + sequence.scan_numbers[keys:],
                            [name for name in self._specs if custom_stream_name(name) in landed])

    def _left_open(self, record: running.RunningRecord) -> None:
        """Take it over (shown, with its sub-scans and points), then resume it (``RecoveryMode
        resume``: its pending numbers followed again) or end it KILLED. One that never
        started is closed, one gone is forgotten."""
        try:
            sequence = self._redis(lambda: SequenceScan.reopen(self.store, record.db_name))
        except (ScanNotFoundError, ValueError) as error:
            logger.warning("not recovering %s: %s", record.db_name, error)
            if isinstance(error, ValueError) and self._redis(
                    lambda: close_left_open(self.store, record.db_name)):
                logger.warning("closed sequence %s left open by a previous run", record.db_name)
            self._redis(lambda: running.clear(self.session.client, self._record_key))
            return
        self._run(sequence, [parse_channel(item) for item in record.channels])
        self._show_new(0, {name: writer.written for name, writer in sequence.writers.items()})
        if self.recovery != "resume":
            logger.warning("closing sequence %s left open by a previous run", record.db_name)
            self._finish(ScanState.KILLED)
            return
        logger.warning("resumed sequence %s left open by a previous run", record.db_name)
        for number in record.pending:  # followed again: referenced once PREPARED
            key, since = self._scans.of_number(number)
            self._await(number, since=since, key=key)

    # -- commands ------------------------------------------------------------------------------
    def start(self, request: StartRequest) -> str:
        """Create the sequence scan (STARTED) and return its key."""
        with self._lock:
            self._begin(Command.START)
            number = self._redis(self._next_number)
            title = request.title if request.title is not None else "sequence_of_scans"
            channels = tuple(request.channels)
            record = tuple(channel_json(spec) for spec in channels)
            try:
                sequence = self._redis(lambda: SequenceScan(
                    self.store, session=self.session.name, number=number, title=title,
                    path=self._path(request.path, number, "sequence_of_scans"),
                    scan_info=request.scan_info, channels=channels, on_created=lambda key: (
                        running.save(self.session.client, self._record_key,
                                     running.RunningRecord(key, record)))))
            except ManagerError:
                self._recovered = False  # a record may be left: close it once Redis answers
                raise
            self._run(sequence, channels)
            return sequence.key

    def _run(self, sequence: SequenceScan, channels: Iterable[ChannelSpec]) -> None:
        """Make ``sequence`` (started, or resumed) the running one."""
        self._sequence, self._specs = sequence, {spec.name: spec for spec in channels}
        self.phase = transition(self.phase, Transition.STARTED)
        self.state, self.sequence_name, self.sequence_number = (
            ScanState.STARTING, sequence.key, int(sequence.scan.number))
        self._notify_state()
        self._notify(SequenceStarted(sequence.key, self.sequence_number,
                                     str(sequence.scan.info.get("title", "")), self.state,
                                     tuple(self._specs.values()), dict(sequence.scan.info),
                                     key=sequence.key))

    def _next_number(self, last: bool = False) -> int:
        """The next number (``last``: the last given), once the db is set up again if Redis lost
        everything (blissdata needs its index); a failing ``counter`` refuses."""
        ensure_set_up(self.store)
        try:
            return self.counter.last() if last else self.counter.next()
        except CounterUnavailable as error:
            raise ManagerError(Reason.REDIS_UNAVAILABLE, f"{error}: check that it runs, or empty "
                               f"{self.names.settings_redis_url}") from None

    def _path(self, given: str | None, number: int, name: str) -> str | None:
        """The HDF5 file of scan ``number``: ``Start``'s ``path`` if given, else ``saving``'s."""
        return given if given is not None else self.saving.path(self.session.name, number, name)

    def plan_add(self, reference: int | str) -> Write:
        """Every check of ``add_scan`` (a refusal writes nothing); returns the write, which
        returns what ``add_scan`` does."""
        with self._lock:
            self._begin(Command.ADD)
            retried = self._retries.retried(RetryKey(RetryKind.ADD, reference))
            if retried:  # its first try landed: the same answer, nothing written twice
                index = (self._sequence.scan_numbers if isinstance(reference, int)
                         else self._sequence.keys).index(reference)
                return lambda: self._sequence.keys[index]
            if isinstance(reference, int):
                key, since = self._find_number(reference)
                if key is None:  # not created yet: one far beyond the counter is named
                    last = self._redis(lambda: self._next_number(last=True))
                    return lambda: self._await(reference, since=since, key=None, last=last)
            else:
                key = self._checked_key(reference)
            scan = self._scans.load(key)
            number = self._not_pending(int(scan.number))
            if scan.state < Bliss2State.PREPARED:
                return lambda: self._await(number, since=None, key=key)
            return lambda: self._reference(key, number, saved_entry(scan), reference)

    def _find_number(self, number: int) -> tuple[str | None, str]:
        """The key of scan ``number`` of the session (None: not created yet) and the moment of
        the search (to follow new scans from)."""
        self._not_itself(number)
        self._not_pending(number)
        key, since = self._scans.of_number(number)
        if key in self._sequence.keys:
            raise ManagerError(Reason.DUPLICATE_SCAN,
                               f"scan {number} is already in sequence {self.sequence_name}")
        return key, since

    def _checked_key(self, key: str) -> str:
        self._not_itself(self._scans.key(key))
        if key in self._sequence.keys:
            raise ManagerError(Reason.DUPLICATE_SCAN, f"{key} is in sequence {self.sequence_name}")
        return key

    def _await(self, number: int, *, since: str | None, key: str | None,
               last: int | None = None) -> str:
        with self._lock:
            if last is not None:
                self._note_far(number, last)
            self._awaiting.follow(number, since=since, key=key)
            return f"pending:{number}"

    def _referenced(self, number: int, scan: Scan) -> bool:
        """(A follower's thread) scan ``number`` is PREPARED: reference it. False when Redis
        failed (followed again)."""
        if self.phase is Phase.RUNNING and scan.key not in self._sequence.keys:
            try:
                self._reference(scan.key, number, saved_entry(scan))
            except ManagerError as error:
                if error.reason is Reason.REDIS_UNAVAILABLE:
                    return False
                logger.warning("scan %s could not be referenced: %s", number, error.message)
        return True

    def _pending_changed(self, numbers: tuple[int, ...]) -> None:
        self._notify(PendingChanged(numbers))
        self._notify_state()  # the status names what is awaited
        try:
            self._redis(lambda: self._save_record(numbers))
        except ManagerError as error:
            logger.warning("running record not updated: %s", error.message)

    def _reference(self, key: str, number: int, entry: Entry | None,
                   reference: int | str | None = None) -> str:
        """Reference scan ``key``, saved in ``entry`` (``reference``: what the client named it
        by, for a retry)."""
        with self._lock:
            sequence = self._sequence
            self._written(lambda: sequence.add_scan(key, number, entry),
                          RetryKey(RetryKind.ADD, key if reference is None else reference))
            self._notify(ScansAdded((number,), (key,)))
            return key

    def _written(self, write: Any, uncertain: RetryKey) -> None:
        """Run a write of the running sequence, once the lease is checked (these writes are
        not fenced); one that got no answer is ``uncertain`` until the next re-read."""
        self._check_lease()
        self._redis(write, uncertain=uncertain)

    def emit(self, channel: str, data: Any, flat: bool = False) -> int:
        """Append points to a custom channel; returns the number of points written."""
        with self._lock:
            self._begin(Command.EMIT)
            block = self._points(channel, data, flat)
            key = RetryKey(RetryKind.EMIT, channel, Points(block))
            if self._retries.retried(key):
                return len(block)
            if len(block):
                sequence = self._sequence
                self._written(lambda: sequence.emit(channel, block), key)
                self._notify(PointsWritten(channel, block))
            return len(block)

    def end(self, state: ScanState | None = None) -> str:
        """Close the sequence (after waiting up to ``end_timeout`` for pending scans, unless a
        state is forced); returns the final state's name."""
        with self._lock:
            self._begin(Command.END)
            if state is None and self.phase is Phase.RUNNING:
                self._awaiting.wait(self.end_timeout)
            if self.phase is Phase.IDLE:
                raise ManagerError(Reason.NOT_RUNNING, "the sequence was ended meanwhile")
            lost = self.lost_message if self.phase is Phase.LOST else ""
            unfinished = sorted(self.pending)
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
        if self.phase is Phase.LOST:  # Redis lost some of it: close what it holds
            try:
                self._redis(lambda: close_left_open(self.store, sequence.key, reason))
                self._closing = f"It is closed now ({reason})."
            except ScanNotFoundError:
                self._closing = "Redis holds nothing of it to close."
        else:
            self._redis(lambda: sequence.end(reason))
        self._clear_record()
        self._ended(state)
        return state

    def _ended(self, final: ScanState) -> None:
        """The sequence is over (closed in Redis): IDLE again."""
        sequence = self._sequence
        self._awaiting.cancel()
        self.phase = transition(self.phase, Transition.ENDED)
        self.state, self._sequence = final, None
        self._notify(PendingChanged(()))
        self._notify_state()
        self._notify(SequenceEnded(final, dict(sequence.scan.info)))

    def _show_new(self, keys: int, landed: dict[str, int]) -> None:
        """Show what the sequence holds unshown (read back from Redis: written without an
        answer, or by a previous run): the sub-scans from the ``keys``-th on, and the last
        ``landed[stream]`` points of each custom channel."""
        sequence = self._sequence
        if len(sequence.keys) > keys:
            self._notify(ScansAdded(tuple(sequence.scan_numbers[keys:]),
                                    tuple(sequence.keys[keys:])))
        starts = {name: sequence.writers[name].written - count
                  for name, count in landed.items() if count > 0 and name != SUBSCANS}
        if starts:
            tails = self._redis(lambda: stream_tails(self.store, sequence.key, starts))
            self._show({name: tails.get(custom_stream_name(name), ()) for name in self._specs})

    # -- groups ----------------------------------------------------------------------------------
    def plan_group(self, references: list[int | str], title: str | None,
                   scan_info: dict[str, Any]) -> Write:
        """The (key, number) of each scan a group is asked for, found before anything is written
        (``UnknownScan``, ``DuplicateScan``); the write returns the group's key."""
        with self._lock:
            self._sync()
            self._redis(lambda: ensure_set_up(self.store))
            found = self._scans.members(references)
        return lambda: self._write_group(found, title, scan_info)

    def _write_group(self, members: list[tuple[str, int, Entry | None]], title: str | None,
                     scan_info: dict[str, Any]) -> str:
        with self._lock:
            number = self._redis(self._next_number)
            path = self._path(None, number, "group_of_scans")
            return self._redis(lambda: write_group(self.store, self.session.name, number, members,
                                                   title, scan_info, path))
