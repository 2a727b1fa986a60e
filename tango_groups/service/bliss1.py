"""``Bliss1Service``: the sequence service in Bliss 1.x data nodes (``DataFormat bliss1``).

It takes checked requests (``requests``), runs them through ``tango_groups.scanning`` (Redis
holds exactly what the Python API writes: sequence, references, pending scans and channels live
in one ``Sequence``) and reports every change as a typed notification (``notifications``).
``core`` holds what every model shares (phases, failures and re-reads, retries, the running
record, the lease, the health check); this module the 1.x specifics:

* scans are referenced by number (in the scan-saving container; pending until they start,
  followed by ``bliss1.pending``) or by db_name; a scan that cannot be read safely (refused
  pickle, missing number) is refused on its own (``NotAScan`` / ``UnknownScan``);
* after a failure, the open sequence is re-read (``Sequence.resync``): what landed after a
  timeout is taken in, so a repeated command does not write it twice; a vanished node is LOST;
* a sequence a previous run left open is closed (END, KILLED, TTLs) or, with
  ``recovery="resume"``, taken over with its pending numbers.

Threads: commands come from the owner's threads (one at a time), pending-scan followers and the
health check run in threads of their own; one re-entrant lock serialises the service, and the
sequence has its own (followers take only the sequence's, so they never wait for a command).
"""

from __future__ import annotations

import logging
from typing import Any

from ..bliss1 import keys, lookup
from ..bliss1.channel import emit_blocks
from ..bliss1.lookup import ScanFacts, UnreadableScan
from ..bliss1.node import ScanNode
from ..data import running
from ..data.channel import ChannelSpec
from ..data.connection import Redis, probe
from ..scanning.chain import AcquisitionChannel
from ..scanning.group import Group, ScanSequenceError, Sequence
from ..scanning.scan import ScanState
from ..scanning.sequence import SequenceContext, SequenceListener
from ..session import Session
from .core import ServiceCore
from .messages import NEUTRAL, NO_FILE, Names, scans_never_started
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
    parse_channel,
)
from .retries import Points, RetryKey, RetryKind
from .states import Command, Phase, Transition, transition

__all__ = ["Bliss1Service"]

logger = logging.getLogger(__name__)


class Bliss1Service(ServiceCore, SequenceListener):
    """One sequence at a time in ``session``; see the module docstring.

    ``owner`` names this service in the running record (the Tango device name);
    ``watch_client`` is the Redis client of the followers (its socket timeout must exceed the
    walks' block time)."""

    def __init__(self, session: Session, redis_url: str, *, owner: str, watch_client: Redis,
                 end_timeout: float = 1.5, recovery: str = "close",
                 on_change: NotificationCallback = lambda notification: None,
                 names: Names = NEUTRAL) -> None:
        super().__init__(session, redis_url, owner=owner, recovery=recovery, on_change=on_change,
                         names=names)
        self.end_timeout = end_timeout
        self.watch_client = watch_client
        self._sequence: Sequence | None = None
        self._context: SequenceContext | None = None
        self._specs: dict[str, ChannelSpec] = {}  # the custom channels of the sequence
        self.state = ScanState.IDLE
        self.sequence_name = ""
        self.sequence_number = 0
        self._counted_in = session.scan_saving_db_name

    # -- what the sequence reports (SequenceListener: called with the sequence's lock) --------
    def scans_published(self, numbers: tuple[int, ...], names: tuple[str, ...]) -> None:
        self._notify(ScansAdded(numbers, names))

    def pending_changed(self, numbers: tuple[int, ...]) -> None:
        self._notify(PendingChanged(numbers))
        self._notify_state()  # the status names what is awaited
        # no _redis here (a follower holds the sequence's lock, not ours): a failure reaches
        # the command's _redis, or the follower's follow_failed
        self._save_record(numbers)

    def follow_failed(self, error: Exception) -> None:
        with self._lock:
            if self._sequence is not None:
                self._unreachable(error)

    @property
    def pending(self) -> tuple[int, ...]:
        return self._sequence.pending_numbers if self._sequence is not None else ()

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the threads; a running sequence is ended as KILLED so that readers waiting for
        its END are released (when Redis does not answer, its record stays in Redis and the next
        service of this owner closes it)."""
        self._stop_health()
        with self._lock:
            if self.phase is Phase.RUNNING:
                try:
                    self._finish(ScanState.KILLED)
                except (ManagerError, ScanSequenceError) as error:
                    logger.warning("sequence %s left open: %s", self.sequence_name, error)
                    self._sequence.abandon()  # no more following: the record closes it later
            self._silence()

    def release(self) -> None:
        """Give the lease up and close the Redis clients (after ``close``)."""
        self._release_lease()
        self.session.close()
        self.watch_client.close()

    def _abandon(self) -> None:
        if self._sequence is not None:
            self._sequence.abandon()

    # -- what the core asks of the model --------------------------------------------------------
    def _probe(self, name: str | None) -> bool:
        return probe(self.session.client, name)

    def _resync_open(self) -> None:
        sequence = self._sequence
        if not self._redis(lambda: self._probe(sequence.db_name)):
            self._sequence_lost()
            return
        found = self._redis(sequence.resync)
        self._resynced(found)
        self._retries.found(
            [str(name) for name in found.get(keys.SCANS_CHANNEL, ())]
            + [int(n) for n in found.get(keys.SCAN_NUMBERS_CHANNEL, ())], found)

    def _left_open(self, record: running.RunningRecord) -> None:
        try:
            specs = [parse_channel(item) for item in record.channels]
            sequence = self._take_over(record, specs)
        except (ManagerError, ScanSequenceError) as error:
            if isinstance(error, ManagerError) and error.reason is Reason.REDIS_UNAVAILABLE:
                raise
            logger.warning("not recovering %s: %s", record.db_name, error)
            self._redis(lambda: running.clear(self.session.client, self._record_key))
            return
        if self.recovery == "resume" and sequence.state is ScanState.STARTING:
            logger.warning("resumed sequence %s left open by a previous run", record.db_name)
            for number in record.pending:
                self._redis(lambda n=number: self._context.add_number(n))
        else:  # a sequence that never reached STARTING cannot be resumed: close it too
            logger.warning("closing sequence %s left open by a previous run", record.db_name)
            self._finish(ScanState.KILLED)

    def _take_over(self, record: running.RunningRecord, specs: list[ChannelSpec]) -> Sequence:
        """Re-open the sequence a previous run left open (crash recovery)."""
        sequence = self._redis(lambda: Sequence.reopen(
            record.db_name, [AcquisitionChannel.from_spec(spec) for spec in specs],
            session=self.session, listener=self, watch_client=self.watch_client))
        self._adopt(sequence, specs)
        self._resynced(sequence.recovered)  # its points, read once by reopen
        return sequence

    def _adopt(self, sequence: Sequence, specs: list[ChannelSpec]) -> None:
        """Make ``sequence`` (started, or re-opened from Redis) the running one."""
        self._sequence, self._context = sequence, SequenceContext(sequence)
        self._specs = {spec.name: spec for spec in specs}
        self.phase = transition(self.phase, Transition.STARTED)
        self.state = sequence.state
        self.sequence_name = sequence.db_name
        self.sequence_number = sequence.scan_nb
        self._notify_state()
        self._notify(SequenceStarted(sequence.db_name, sequence.scan_nb, sequence.title,
                                     sequence.state, tuple(specs), sequence.scan_info))
        if sequence.scan_names:  # re-opened: what it holds already
            self._notify(ScansAdded(tuple(sequence.scan_numbers), tuple(sequence.scan_names)))

    def _resynced(self, found: dict[str, Any]) -> None:
        """Points of the custom channels that Redis holds beyond what was notified."""
        self._show({name: found.get(_fullname(name), ()) for name in self._specs})

    # -- commands ------------------------------------------------------------------------------
    def start(self, request: StartRequest) -> str:
        """Create the sequence (scan_group) and return its db_name."""
        if request.path:
            raise ManagerError(Reason.BAD_REQUEST, f"path {request.path!r:.80}: {NO_FILE}")
        with self._lock:
            self._begin(Command.START)
            sequence = Sequence(scan_info=request.scan_info, title=request.title,
                                session=self.session, listener=self, watch_client=self.watch_client)
            for spec in request.channels:
                sequence.add_custom_channel(AcquisitionChannel.from_spec(spec))
            self._specs = {spec.name: spec for spec in request.channels}
            channels = tuple(self._channel_json())

            def save(db_name: str) -> None:
                running.save(self.session.client, self._record_key,
                             running.RunningRecord(db_name, channels))

            try:
                self._redis(lambda: sequence.start(on_created=save))
            except ManagerError:
                self._recovered = False  # a record may be left: close it once Redis answers
                raise
            self._adopt(sequence, list(request.channels))
            return self.sequence_name

    def plan_add(self, reference: int | str) -> Write:
        """Every check of ``add_scan`` (a refusal writes nothing); returns the write, which
        returns what ``add_scan`` does."""
        with self._lock:
            self._begin(Command.ADD)
            sequence = self._sequence
            retried = self._retries.retried(RetryKey(RetryKind.ADD, reference))
            if isinstance(reference, int):
                facts = self._find_number(reference, retried)
                if facts is None:
                    return lambda: self._add_pending(reference, None)
            else:
                facts = self._find_name(reference)
            if sequence.references(facts.db_name):
                if retried:
                    return lambda: facts.db_name
                raise ManagerError(Reason.DUPLICATE_SCAN,
                                   f"{facts.db_name} is already in sequence {self.sequence_name}")
            self._not_pending(facts.number)
            if not facts.prepared:
                return lambda: self._add_pending(facts.number, facts)
            return lambda: self._add_node(reference, facts)

    def _add_node(self, reference: int | str, facts: ScanFacts) -> str:
        with self._lock:
            self._redis(lambda: self._context.add_node(facts.node(self.session.client),
                                                       facts.number, facts.ended),
                        uncertain=RetryKey(RetryKind.ADD, reference))
            return facts.db_name

    def _add_pending(self, number: int, facts: ScanFacts | None) -> str:
        """Reference scan ``number`` when it is prepared (followed in Redis meanwhile); one far
        beyond the container's counter (a typo, most likely) is named in the status."""
        client, container = self.session.client, self.session.scan_saving_db_name
        with self._lock:
            last = self._redis(lambda: lookup.allocated_number(client, container))
            self._note_far(number, last)
            self._redis(lambda: self._context.add_number(number, facts))
            return f"pending:{number}"

    def _find_number(self, number: int, retried: bool | None) -> ScanFacts | None:
        """The scan numbered ``number``; None when it is not registered yet (pending)."""
        self._not_itself(number)
        self._not_pending(number)
        if self._sequence.references(number) and not retried:
            raise ManagerError(Reason.DUPLICATE_SCAN,
                               f"scan {number} is already in sequence {self.sequence_name}")
        client, container = self.session.client, self.session.scan_saving_db_name
        search = self._lookup(lambda: lookup.search_number(client, container, number))
        if search.facts is not None:
            return search.facts
        if search.registered or (search.settled and number <= self._redis(
                lambda: lookup.allocated_number(client, container))):
            raise ManagerError(Reason.UNKNOWN_SCAN,
                               f"no scan number {number} in {container} (expired, not a scan, or "
                               "never written); add it by db_name if it lives elsewhere")
        return None  # not allocated yet, or allocated and its node not registered yet

    def _find_name(self, db_name: str) -> ScanFacts:
        self._not_itself(db_name)
        if db_name.startswith(SCAN_KEY_PREFIX):
            raise ManagerError(Reason.UNKNOWN_SCAN, f"{db_name} is a Bliss 2 scan key: this device "
                               "writes Bliss 1.x data nodes (DataFormat bliss1); "
                               "give a scan number or a scan db_name")
        facts = self._lookup(lambda: lookup.scan_facts(self.session.client, db_name))
        if facts is None:
            raise ManagerError(Reason.UNKNOWN_SCAN,
                               f"no node {db_name!r} in Redis (expired, or never "
                               "written): give a scan number or a scan db_name")
        if not facts.is_scan:
            raise ManagerError(Reason.NOT_A_SCAN,
                               f"{db_name} is a {facts.node_type} node, not a scan")
        return facts

    def _lookup(self, action: Any) -> Any:
        try:
            return self._redis(action)
        except UnreadableScan as error:
            raise ManagerError(Reason.NOT_A_SCAN, f"{error}: it cannot be referenced") from None

    def emit(self, channel: str, data: Any, flat: bool = False) -> int:
        """Append points to a custom channel; ``flat`` data is reshaped to the channel's point
        shape (what a DevVarDoubleArray carries). Returns the number of points written."""
        with self._lock:
            self._begin(Command.EMIT)
            block = self._points(channel, data, flat)
            writer = self._sequence.writer.channels[_fullname(channel)]
            key = RetryKey(RetryKind.EMIT, _fullname(channel), Points(block))
            if self._retries.retried(key):
                return len(block)
            if len(block):
                self._redis(lambda: emit_blocks({writer: block}), uncertain=key)
                self._notify(PointsWritten(channel, block))
            return len(block)

    def end(self, state: ScanState | None = None) -> str:
        """End the sequence (after waiting up to ``end_timeout`` for pending scans, unless a state
        is forced); returns the final state's name."""
        with self._lock:
            self._begin(Command.END)
            if self.phase is Phase.LOST:
                message = self.lost_message
                self._ended(ScanState.KILLED)
                raise ManagerError(Reason.SEQUENCE_LOST, message)
            sequence = self._sequence
        if state is None:
            sequence.wait_pending(self.end_timeout)  # what is still pending is reported
        with self._lock:
            if self._sequence is not sequence or self.phase is not Phase.RUNNING:
                raise ManagerError(Reason.NOT_RUNNING, "the sequence was ended meanwhile")
            name, final = self.sequence_name, self._finish(state)
            unfinished = [n for n in sequence.unfinished if isinstance(n, int)]
            if unfinished and state is None:
                raise scans_never_started(name, final.name, unfinished, self.end_timeout,
                                          self.names)
            return final.name

    def _finish(self, state: ScanState | None) -> ScanState:
        """End the running sequence in Redis and go IDLE (the phase stays when Redis fails)."""
        sequence = self._sequence
        try:
            self._redis(lambda: sequence.end(state))
        except ScanSequenceError:
            pass  # ended; the caller reports the scans that never started
        self._clear_record()
        self._ended(sequence.state)
        return sequence.state

    def _ended(self, final: ScanState) -> None:
        """The sequence is over (ended in Redis, or lost with Redis's data): IDLE again."""
        sequence = self._sequence
        self.phase = transition(self.phase, Transition.ENDED)
        self._sequence = self._context = None
        self.state = final
        self._notify(PendingChanged(()))  # what it waited for is dropped, then it is over
        self._notify_state()
        self._notify(SequenceEnded(final, sequence.scan_info))

    def plan_group(self, references: list[int | str], title: str | None,
                   scan_info: dict[str, Any]) -> Write:
        """The node of each scan a group is asked for, found before anything is written; the
        write of the ``Group`` returns its db_name."""
        with self._lock:
            self._sync()
            nodes = []
            for reference in references:
                if isinstance(reference, int):
                    facts = self._lookup(lambda n=reference: lookup.find_scan(
                        self.session.client, self.session.scan_saving_db_name, n))
                    if facts is None:
                        raise ManagerError(Reason.UNKNOWN_SCAN, f"no scan number {reference} "
                                           f"in {self.session.scan_saving_db_name}")
                else:
                    facts = self._find_name(reference)
                nodes.append(facts.node(self.session.client))
            if len({node.db_name for node in nodes}) != len(nodes):
                raise ManagerError(Reason.DUPLICATE_SCAN, "a scan is listed twice")
        return lambda: self._write_group(nodes, title, scan_info)

    def _write_group(self, members: list[ScanNode], title: str | None,
                     scan_info: dict[str, Any]) -> str:
        with self._lock:
            try:
                group = self._redis(lambda: Group(*members, title=title, scan_info=scan_info,
                                                  session=self.session))
            except ScanSequenceError as error:
                raise ManagerError(Reason.NOT_A_SCAN, str(error)) from None
            return group.db_name

def _fullname(name: str) -> str:
    """A custom channel's fullname in the sequence (Bliss renames the two reserved names)."""
    return Sequence.channel_fullname(name)
