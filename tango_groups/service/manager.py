"""``Manager``: the SequenceManager's core, one live sequence at a time, driven by commands.

It owns what the device shows: the current (or last) sequence, the scans it references, the scans
added by number that have not started yet (*pending*), the custom channels and their points. It
writes through ``tango_groups.scanning.group.Sequence`` (so Redis holds exactly what the Python
API writes) and reports which of its values changed through one callback, ``on_change(names)``,
called in the order the changes happened (with the manager's lock held: the callback must only
record or queue, never call back into the manager from another thread). Names are ``State`` (the
phase, the connection, the status text), the sequence values of ``ATTRIBUTES`` and
``channel:<name>`` for the points of a custom channel.

Faults, and what the manager guarantees (see ``states`` for the phases):

* A Redis that fails (down, hung past the client's timeout, restarting) makes the command fail
  with ``SequenceManager_RedisUnavailable`` and leaves the phase as it was. Before the next write,
  the manager pings Redis and re-reads what it holds of the open sequence (``_sync``): points or
  references that landed after the timeout are taken in, and repeating the command that failed
  does not write them twice.
* A sequence whose node vanished (Redis restarted without its data) puts the manager in LOST.
* The sequence that runs is recorded in Redis (``tango_groups.data.running``): a manager that
  starts while a record of its owner exists closes that sequence (END, KILLED, TTLs) or, with
  ``recovery="resume"``, takes it over.
* A scan that cannot be read safely (refused pickle, missing number) is refused on its own
  (``NotAScan`` / ``UnknownScan`` with the reason); it never stops a command, a follower or End.

Threads: commands come from Tango's threads (one at a time per device), followers and the health
check run in threads of their own (``watchers``); one re-entrant lock serialises them all.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy
import redis

from ..data import keys, lookup, running
from ..data.channel import ChannelDataError, ChannelWriter, emit_blocks
from ..data.connection import redact
from ..data.lookup import ScanFacts, UnreadableScan
from ..data.node import DataNode, get_node
from ..scanning.chain import AcquisitionChannel
from ..scanning.group import Group, ScanSequenceError, Sequence, scans_not_finished
from ..scanning.scan import ScanState
from ..session import Session
from .requests import (
    ChannelDecl,
    ManagerError,
    StartRequest,
    parse_group_request,
    parse_scan_reference,
)
from .states import Command, Phase, refusal, tango_state, transition
from .watchers import Follower, Periodic

__all__ = ["ATTRIBUTES", "RECOVERY_MODES", "Manager"]

logger = logging.getLogger(__name__)

ATTRIBUTES = ("SequenceName", "SequenceNumber", "Title", "SequenceState", "ScanNumbers",
              "ScanNames", "ScanCount", "PendingScans", "ChannelNames", "ScanInfo")
RECOVERY_MODES = ("close", "resume")


@dataclasses.dataclass(frozen=True)
class _Uncertain:
    """A write that failed without telling whether it landed: the request that made it (``key``),
    and whether the re-read after the failure found it in Redis."""

    key: tuple[Any, ...]
    landed: bool = False


class Manager:
    """One sequence at a time in ``session``; see the module docstring.

    ``owner`` names this manager in the running record (the Tango device name);
    ``watch_client`` is the Redis client of the followers (its socket timeout must exceed the
    walks' block time).
    """

    def __init__(self, session: Session, redis_url: str, *, owner: str,
                 watch_client: redis.Redis, end_timeout: float = 1.5, recovery: str = "close",
                 on_change: Callable[[tuple[str, ...]], None] = lambda names: None) -> None:
        if recovery not in RECOVERY_MODES:
            raise ValueError(f"recovery must be one of {RECOVERY_MODES}, not {recovery!r}")
        self.session = session
        self.redis_url = redact(redis_url)
        self.end_timeout = end_timeout
        self.recovery = recovery
        self.on_change = on_change
        self._watch_client = watch_client
        self._record_key = running.record_key(session.name, owner)
        self._lock = threading.RLock()
        self.phase = Phase.IDLE
        self._sequence: Sequence | None = None
        self._channels: dict[str, ChannelWriter] = {}
        self._followers: list[Follower] = []
        self._container_follower: Follower | None = None
        self._pending: dict[int, None] = {}  # insertion-ordered set of scan numbers
        self._no_pending = threading.Event()
        self._no_pending.set()
        self._health: Periodic | None = None
        self._checked = False  # Redis re-read since the last failure (and at start)
        self._recovered = False  # a sequence left open by a previous run was dealt with
        self._uncertain: _Uncertain | None = None
        self.connected = True
        self.connection_error = ""
        self.lost_message = ""
        self.state = ScanState.IDLE
        self.title = ""
        self.sequence_name = ""
        self.sequence_number = 0
        self.scan_info: dict[str, Any] = {}
        self.scan_numbers: list[int] = []
        self.scan_names: list[str] = []
        self.channels: dict[str, ChannelDecl] = {}
        self._points: dict[str, list[numpy.ndarray]] = {}

    # -- what the device shows ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.phase is Phase.RUNNING

    @property
    def pending(self) -> list[int]:
        return list(self._pending)

    @property
    def tango_state(self) -> str:
        return tango_state(self.phase, self.connected)

    def points(self, channel: str) -> numpy.ndarray:
        """Every point emitted on ``channel`` in the current (or last) sequence."""
        with self._lock:
            decl = self.channels[channel]
            blocks = self._points[channel]
            if not blocks:
                return numpy.empty((0,) + decl.shape, dtype=decl.dtype)
            if len(blocks) > 1:
                blocks[:] = [numpy.concatenate(blocks)]
            return blocks[0]

    def _notify(self, *names: str) -> None:
        self.on_change(names)

    # -- life cycle ----------------------------------------------------------------------------
    def open(self, health_period: float) -> None:
        """Deal with a sequence a previous run left open (when Redis answers: else as soon as it
        does), then check Redis every ``health_period`` seconds."""
        with self._lock:
            try:
                self._sync(probe=True)
            except ManagerError:
                pass  # reported through State; the health check retries
        self._health = Periodic(self.check_health, health_period, "tango_groups-health")

    def close(self) -> None:
        """Stop the threads; a running sequence is ended as KILLED so that readers waiting for
        its END are released (when Redis does not answer, its record stays in Redis and the next
        manager of this owner closes it)."""
        if self._health is not None:
            self._health.stop()
        with self._lock:
            if self.phase is Phase.RUNNING:
                try:
                    self._finish(ScanState.KILLED)
                except (ManagerError, ScanSequenceError) as error:
                    logger.warning("sequence %s left open: %s", self.sequence_name, error)
            self._stop_followers()

    # -- Redis health --------------------------------------------------------------------------
    def check_health(self) -> bool:
        """Ping Redis (and check that the open sequence still exists); after a failure, re-read
        Redis (``_sync``). Reports changes through ``State``. Returns whether Redis answered."""
        name = self.sequence_name if self.phase is Phase.RUNNING else ""
        try:
            with self.session.client.pipeline(transaction=False) as pipe:
                pipe.ping()
                if name:
                    pipe.exists(name)
                replies = pipe.execute()
        except redis.RedisError as error:
            with self._lock:
                self._unreachable(error)
            return False
        with self._lock:
            if name and not replies[1] and self.phase is Phase.RUNNING and (
                    self.sequence_name == name):
                self._sequence_lost()
            try:
                self._sync(probe=True)
            except ManagerError:
                return False
        return True

    def _unreachable(self, error: Exception) -> ManagerError:
        """Record a Redis failure (Redis is re-read before the next write) and the refusal."""
        timed_out = isinstance(error, redis.TimeoutError)
        message = (f"Redis at {self.redis_url} is unreachable ({type(error).__name__}: {error}). "
                   + ("A write that timed out may still land: the device re-reads Redis before "
                      "writing again, so repeating the command is safe. " if timed_out else "")
                   + "Check that the data Redis runs and that the RedisURL property is right; the "
                     "device recovers by itself once it answers.")
        changed = self.connected or self.connection_error != message
        self._checked = False
        self.connected, self.connection_error = False, message
        if changed:
            self._notify("State")
        return ManagerError("RedisUnavailable", message)

    def _redis(self, action: Callable[[], Any], uncertain: tuple[Any, ...] | None = None) -> Any:
        """Run a Redis action; a failure becomes ``RedisUnavailable``. ``uncertain``: the key of
        the request, when the action writes (a retry of it is recognised after the re-read)."""
        try:
            return action()
        except redis.RedisError as error:
            failure = error
        except RuntimeError as error:  # Sequence.start wraps what failed while preparing
            if not isinstance(error.__cause__, redis.RedisError):
                raise
            failure = error.__cause__
        if uncertain is not None:
            self._uncertain = _Uncertain(uncertain)
        raise self._unreachable(failure) from None

    def _sync(self, probe: bool = False) -> None:
        """Before writing after a failure (or at start): Redis answers, a sequence left open by a
        previous run is dealt with, and the open sequence is re-read from Redis.

        While Redis is known to fail, commands are refused at once (a hung Redis would make each
        of them wait ``RedisTimeout``, and clients queued behind them time out): only the health
        check (``probe``) tries Redis again."""
        if self._checked:
            return
        if not (self.connected or probe):
            raise ManagerError("RedisUnavailable", self.connection_error)
        self._redis(self.session.client.ping)
        if not self._recovered:
            self._recover()
        if self.phase is Phase.RUNNING:
            self._resync_sequence()
        self._checked = True
        if not self.connected:
            self.connected, self.connection_error = True, ""
            self._notify("State")

    def _resync_sequence(self) -> None:
        if not self._redis(lambda: self.session.client.exists(self.sequence_name)):
            self._sequence_lost()
            return
        found = self._redis(self._sequence.resync)
        names = [str(name) for name in found.pop("scans", ())]
        numbers = [int(number) for number in found.pop("scan_numbers", ())]
        if names or numbers:
            self.scan_names += names
            self.scan_numbers += numbers
            self._notify("ScanNumbers", "ScanNames", "ScanCount")
        for name, channel in self._channels.items():
            points = found.get(channel.spec.channel_fullname)
            if points is not None and len(points):
                self._points[name].append(numpy.asarray(points, dtype=self.channels[name].dtype))
                self._notify(f"channel:{name}")
        if self._uncertain is not None:
            kind, target = self._uncertain.key[:2]
            landed = (target in names or target in numbers) if kind == "add" else target in found
            self._uncertain = dataclasses.replace(self._uncertain, landed=landed)
        if not self._sequence.ending:  # an End that failed takes no more scans
            self._follow_pending()

    def _retried(self, key: tuple[Any, ...]) -> bool | None:
        """For a request on the target of the write whose outcome was unknown: whether it repeats
        that request and the write landed (the repeat must not write again). None otherwise."""
        uncertain = self._uncertain
        if uncertain is None or uncertain.key[:2] != key[:2]:
            return None
        self._uncertain = None
        return uncertain.key == key and uncertain.landed

    def _sequence_lost(self) -> None:
        self.phase = transition(self.phase, "lost")
        self._stop_followers()
        self.lost_message = (f"Redis no longer holds sequence {self.sequence_name} (restarted "
                             "without its data?): its scans and points are gone for its readers. "
                             "End or Abort to clear it, then Start a new sequence.")
        logger.error(self.lost_message)
        self._notify("State")

    # -- crash recovery ------------------------------------------------------------------------
    def _recover(self) -> None:
        """Close (or resume) the sequence a previous run of this owner left open."""
        record = self._redis(lambda: running.load(self.session.client, self._record_key))
        if record is None:
            self._recovered = True
            return
        try:
            decls = [ChannelDecl.from_json(item) for item in record.channels]
            sequence = self._redis(lambda: Sequence.reopen(
                record.db_name, [_acquisition_channel(d) for d in decls], session=self.session))
        except (ManagerError, ScanSequenceError) as error:
            if isinstance(error, ManagerError) and error.reason.endswith("RedisUnavailable"):
                raise
            logger.warning("not recovering %s: %s", record.db_name, error)
            self._redis(lambda: running.clear(self.session.client, self._record_key))
            self._recovered = True
            return
        self._adopt(sequence, decls)
        self._redis(self._load_view)
        self._recovered = True
        self._notify("State", *ATTRIBUTES, *(f"channel:{name}" for name in self.channels))
        if self.recovery == "resume" and sequence.state is ScanState.STARTING:
            logger.warning("resumed sequence %s left open by a previous run", record.db_name)
            self._pending = dict.fromkeys(record.pending)
            if self._pending:
                self._no_pending.clear()
                self._notify("PendingScans")
            self._follow_pending()
        else:  # a sequence that never reached STARTING cannot be resumed: close it too
            logger.warning("closing sequence %s left open by a previous run", record.db_name)
            self._finish(ScanState.KILLED)

    def _adopt(self, sequence: Sequence, decls: list[ChannelDecl]) -> None:
        """Make ``sequence`` (started, or re-opened from Redis) the running one."""
        self._sequence = sequence
        self._channels = {decl.name: sequence.writer.channels[_fullname(decl.name)]
                          for decl in decls}
        self.phase = transition(self.phase, "started")
        self.state = sequence.state
        self.title = sequence.title
        self.sequence_name = sequence.db_name
        self.sequence_number = sequence.scan_nb
        self.scan_info = sequence.scan_info
        self.scan_names, self.scan_numbers = [], []
        self._pending.clear()
        self._no_pending.set()
        self.channels = {decl.name: decl for decl in decls}
        self._points = {decl.name: [] for decl in decls}

    def _load_view(self) -> None:
        """What the re-opened sequence holds in Redis: its references and points."""
        group = self._sequence.writer
        self.scan_names = [str(name) for name in group.scans.read(0)]
        self.scan_numbers = [int(n) for n in group.scan_numbers.read(0)]
        for name, channel in self._channels.items():
            points = channel.read(0)
            if len(points):
                self._points[name] = [numpy.asarray(points, dtype=self.channels[name].dtype)]

    def _save_record(self) -> None:
        record = running.RunningRecord(self.sequence_name,
                                       tuple(decl.to_json() for decl in self.channels.values()),
                                       tuple(self._pending))
        self._redis(lambda: running.save(self.session.client, self._record_key, record))

    # -- commands ------------------------------------------------------------------------------
    def _begin(self, command: Command) -> None:
        """Re-read Redis if needed, then refuse ``command`` if the phase does not take it."""
        self._sync()
        reason = refusal(self.phase, command)
        if reason == "AlreadyRunning":
            raise ManagerError(reason, f"sequence {self.sequence_name} is running: End or Abort "
                                       "it first")
        if reason == "NotRunning":
            raise ManagerError(reason, "no sequence is running: Start one first")
        if reason == "SequenceLost":
            raise ManagerError(reason, self.lost_message)

    def start(self, request: StartRequest) -> str:
        """Create the sequence (scan_group) and return its db_name."""
        with self._lock:
            self._begin(Command.START)
            sequence = Sequence(scan_info=request.scan_info, title=request.title,
                                session=self.session)
            for decl in request.channels:
                sequence.add_custom_channel(_acquisition_channel(decl))
            channels = tuple(decl.to_json() for decl in request.channels)

            def save(db_name: str) -> None:
                running.save(self.session.client, self._record_key,
                             running.RunningRecord(db_name, channels))

            try:
                self._redis(lambda: sequence.start(on_created=save))
            except ManagerError:
                self._recovered = False  # a record may be left: close it once Redis answers
                raise
            self._adopt(sequence, list(request.channels))
            self._notify("State", *ATTRIBUTES)
            return self.sequence_name

    def add_scan(self, text: str) -> str:
        """Reference a scan by number or db_name; returns its db_name, or ``pending:<n>``."""
        reference = parse_scan_reference(text)
        with self._lock:
            self._begin(Command.ADD)
            retried = self._retried(("add", reference))
            if isinstance(reference, int):
                facts = self._find_number(reference, retried)
                if facts is None:
                    return self._add_pending(reference)
            else:
                facts = self._find_name(reference)
            if facts.db_name in self.scan_names:
                if retried:
                    return facts.db_name
                raise ManagerError("DuplicateScan",
                                   f"{facts.db_name} is already in sequence {self.sequence_name}")
            if facts.number in self._pending:
                raise ManagerError("DuplicateScan", f"scan {facts.number} is already pending in "
                                                    f"sequence {self.sequence_name}")
            if not facts.prepared:
                self._follow(self._redis(lambda: facts.node(self._watch_client).walk_events(
                    include_filter="scan", wait=True)))
                return self._add_pending(facts.number)
            self._publish(facts, ("add", reference))
            return facts.db_name

    def _find_number(self, number: int, retried: bool | None) -> ScanFacts | None:
        """The scan numbered ``number``; None when it is not registered yet (pending)."""
        if number == self.sequence_number:
            raise ManagerError("NotAScan", f"scan {number} is the running sequence itself")
        if number in self._pending:
            raise ManagerError("DuplicateScan", f"scan {number} is already pending in sequence "
                                                f"{self.sequence_name}")
        if number in self.scan_numbers and not retried:
            raise ManagerError("DuplicateScan",
                               f"scan {number} is already in sequence {self.sequence_name}")
        client, container = self.session.client, self.session.scan_saving_db_name
        search = self._lookup(lambda: lookup.search_number(client, container, number))
        if search.facts is not None:
            return search.facts
        if search.registered or (search.settled and number <= self._redis(
                lambda: lookup.allocated_number(client, container))):
            raise ManagerError("UnknownScan",
                               f"no scan number {number} in {container} (expired, not a scan, or "
                               "never written); add it by db_name if it lives elsewhere")
        # not allocated yet, or allocated and its node not registered yet (other scans may
        # register first): follow new scans first, then look again, so that a scan registered
        # in between is either found now or seen by the follower
        self._follow_container()
        return self._lookup(lambda: lookup.find_scan(client, container, number))

    def _find_name(self, db_name: str) -> ScanFacts:
        if db_name == self.sequence_name:
            raise ManagerError("NotAScan", f"{db_name} is the running sequence itself")
        facts = self._lookup(lambda: lookup.scan_facts(self.session.client, db_name))
        if facts is None:
            raise ManagerError("UnknownScan", f"no node {db_name!r} in Redis (expired, or never "
                                              "written): give a scan number or a scan db_name")
        if not facts.is_scan:
            raise ManagerError("NotAScan", f"{db_name} is a {facts.node_type} node, not a scan")
        return facts

    def _lookup(self, action: Callable[[], Any]) -> Any:
        try:
            return self._redis(action)
        except UnreadableScan as error:
            raise ManagerError("NotAScan", f"{error}: it cannot be referenced") from None

    def emit(self, channel: str, data: Any, flat: bool = False) -> int:
        """Append points to a custom channel; ``flat`` data is reshaped to the channel's point
        shape (what a DevVarDoubleArray carries). Returns the number of points written."""
        with self._lock:
            self._begin(Command.EMIT)
            decl = self.channels.get(channel)
            if decl is None:
                raise ManagerError("UnknownChannel",
                                   f"no channel {channel!r} in sequence {self.sequence_name}; "
                                   f"declared: {', '.join(self.channels) or 'none'}")
            block = numpy.asarray(data)
            if flat:
                size = math.prod(decl.shape)
                if block.ndim != 1 or block.size % size:
                    raise ManagerError("BadData",
                                       f"channel {channel!r} takes points of shape {decl.shape}: "
                                       f"send a multiple of {size} values, not {block.size}")
                block = block.reshape((-1,) + decl.shape)
            writer = self._channels[channel]
            try:
                block = writer.points(block)
            except ChannelDataError as error:
                raise ManagerError("BadData", str(error)) from None
            key = ("emit", writer.spec.channel_fullname, block.dtype.str, block.shape,
                   block.tobytes())
            if self._retried(key):
                return len(block)
            if len(block):
                self._redis(lambda: emit_blocks({writer: block}), uncertain=key)
                self._points[channel].append(block)
                self._notify(f"channel:{channel}")
            return len(block)

    def end(self, state: ScanState | None = None) -> str:
        """End the sequence (after waiting up to ``end_timeout`` for pending scans, unless a state
        is forced); returns the final state's name."""
        with self._lock:
            self._begin(Command.END)
            if self.phase is Phase.LOST:
                message = self.lost_message
                self._ended(ScanState.KILLED)
                raise ManagerError("SequenceLost", message)
            sequence = self._sequence
        if state is None:
            self._no_pending.wait(self.end_timeout)  # what is still pending is reported below
        with self._lock:
            if self._sequence is not sequence or self.phase is not Phase.RUNNING:
                raise ManagerError("NotRunning", "the sequence was ended meanwhile")
            unfinished = list(self._pending)
            final = self._finish(state)
            if unfinished and state is None:
                error = scans_not_finished(sequence.title)
                raise ManagerError("ScansNotFinished", f"{error} (scans {unfinished} never "
                                                       f"started within {self.end_timeout} s)")
            return final.name

    def abort(self) -> str:
        return self.end(ScanState.USER_ABORTED)

    def _finish(self, state: ScanState | None) -> ScanState:
        """End the running sequence in Redis and go IDLE (the phase stays when Redis fails)."""
        sequence = self._sequence
        final = self._redis(lambda: sequence.end(state))
        self._stop_followers()
        try:
            self._redis(lambda: running.clear(self.session.client, self._record_key))
        except ManagerError:
            self._recovered = False  # the record names an ended sequence: cleared later
        self.scan_info = sequence.scan_info
        self._ended(final)
        self._notify("ScanInfo")
        return final

    def _ended(self, final: ScanState) -> None:
        """The sequence is over (ended in Redis, or lost with Redis's data): IDLE again."""
        self.phase = transition(self.phase, "ended")
        self._sequence, self._channels = None, {}
        self._pending.clear()
        self._no_pending.set()
        self.state = final
        self._notify("State", "SequenceState", "PendingScans")

    def create_group(self, request: str) -> str:
        """``Group`` of existing scans in one call; returns the group's db_name."""
        references, title, scan_info = parse_group_request(request)
        with self._lock:
            self._sync()
            nodes = []
            for reference in references:
                if isinstance(reference, int):
                    facts = self._lookup(lambda n=reference: lookup.find_scan(
                        self.session.client, self.session.scan_saving_db_name, n))
                    if facts is None:
                        raise ManagerError("UnknownScan", f"no scan number {reference} in "
                                                          f"{self.session.scan_saving_db_name}")
                else:
                    facts = self._find_name(reference)
                nodes.append(facts.node(self.session.client))
            if len({node.db_name for node in nodes}) != len(nodes):
                raise ManagerError("DuplicateScan", "a scan is listed twice")
            try:
                group = self._redis(lambda: Group(*nodes, title=title, scan_info=scan_info,
                                                  session=self.session))
            except ScanSequenceError as error:
                raise ManagerError("NotAScan", str(error)) from None
            return group.db_name

    # -- pending scans -------------------------------------------------------------------------
    def _publish(self, facts: ScanFacts, key: tuple[Any, ...]) -> None:
        node = facts.node(self.session.client)
        self._redis(lambda: self._sequence._add_node(node, facts.number), uncertain=key)
        self.scan_numbers.append(facts.number)
        self.scan_names.append(facts.db_name)
        self._notify("ScanNumbers", "ScanNames", "ScanCount")

    def _add_pending(self, number: int) -> str:
        """Reference scan ``number`` when a follower sees it prepared."""
        self._pending[number] = None
        self._no_pending.clear()
        self._save_record()
        self._notify("PendingScans")
        return f"pending:{number}"

    def _follow(self, walk: Any) -> Follower:
        sequence = self._sequence

        def prepared(node: DataNode) -> None:
            self._scan_prepared(sequence, node)

        def failed(error: redis.RedisError) -> None:
            with self._lock:
                if self._sequence is sequence:
                    self._unreachable(error)

        follower = Follower(walk, prepared, failed)
        self._followers.append(follower)
        return follower

    def _follow_container(self) -> None:
        """Follow the scans registered from now on in the scan-saving container (where scan
        numbers live; created when missing): one follower serves every pending number."""
        if self._container_follower is None or not self._container_follower.alive:
            parent = self._redis(lambda: self.session.scan_saving_parent)
            walk = self._redis(lambda: get_node(parent, connection=self._watch_client)
                               .walk_on_new_events(include_filter="scan", wait=True))
            self._container_follower = self._follow(walk)

    def _follow_pending(self) -> None:
        """(Re)start following every pending number (after Redis failed, or on resume): the
        container's follower first, then each number is looked up again."""
        self._stop_followers()
        for number in list(self._pending):
            self._follow_container()
            facts = self._lookup(lambda n=number: lookup.find_scan(
                self.session.client, self.session.scan_saving_db_name, n))
            if facts is None:
                continue
            if facts.prepared:
                self._resolve_pending(facts)
            else:
                self._follow(self._redis(lambda f=facts: f.node(self._watch_client).walk_events(
                    include_filter="scan", wait=True)))

    def _scan_prepared(self, sequence: Sequence, node: DataNode) -> None:
        with self._lock:
            if self._sequence is not sequence or self.phase is not Phase.RUNNING or (
                    sequence.ending):
                return
            try:
                facts = lookup.scan_facts(self.session.client, node.db_name)
            except UnreadableScan as error:
                logger.warning("ignoring %s", error)
                return
            except redis.RedisError as error:
                self._unreachable(error)
                return
            if facts is not None and facts.number in self._pending:
                try:
                    self._resolve_pending(facts)
                except ManagerError:
                    pass  # Redis failed: reported; the re-read after it follows the number again

    def _resolve_pending(self, facts: ScanFacts) -> None:
        if facts.db_name not in self.scan_names:
            self._publish(facts, ("add", facts.number))
        del self._pending[facts.number]
        if not self._pending:
            self._no_pending.set()
        self._save_record()
        self._notify("PendingScans")

    def _stop_followers(self) -> None:
        """Stop following (the threads end within the walks' block time; not waited for: they
        may be waiting for this manager's lock, and find the sequence over when they get it)."""
        for follower in self._followers:
            follower.stop()
        self._followers.clear()
        self._container_follower = None


def _fullname(name: str) -> str:
    """A custom channel's fullname in the sequence (Bliss renames the two reserved names)."""
    return f"{keys.GROUPING_MASTER}:{name}" if name in (keys.SCANS_CHANNEL,
                                                       keys.SCAN_NUMBERS_CHANNEL) else name


def _acquisition_channel(decl: ChannelDecl) -> AcquisitionChannel:
    return AcquisitionChannel(decl.name, decl.dtype.name, decl.shape, decl.unit)
