"""``ServiceCore``: what every sequence service shares, whatever data model it writes.

The model-neutral half of ``bliss1.Bliss1Service`` and ``bliss2.Bliss2Service``; each adds its
commands and the few hooks declared abstract at the end of the class. It keeps:

* the phase (``states``), the lock that serialises a service, the notifications
  (``notifications``) and the status text;
* the connection flag and the message a refused command gets (``RedisUnavailable``): ``_redis``
  runs every Redis action of a command and turns a failure into that refusal;
* the *uncertain* write (``retries``): re-read before the next write (``_sync``, the model's
  ``_resync_open``), so that repeating the command that failed writes nothing twice;
* crash recovery: the running record of this owner (``tango_groups.data.running``) names a
  sequence a previous run left open, which the model closes or resumes (``_left_open``);
* the device's lease (``lease_guard``): acquired before anything is recovered or written,
  renewed by the health check;
* the health check (``open``): every period, renew the lease, ping Redis and check that the open
  sequence still exists (LOST when it vanished), then re-read after a failure. While Redis is
  known to fail, commands are refused at once (a hung Redis would make each wait
  ``RedisTimeout``, and clients queued behind them time out): only the health check tries Redis
  again.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy

from ..data import running
from ..data.channel import ChannelDataError, ChannelSpec
from ..data.connection import RedisError, redact
from ..data.lease import LeaseLostError
from ..scanning.scan import ScanState
from ..session import Session
from .lease_guard import LeaseGuard
from .messages import FAR_BEYOND, Names, far_beyond, redis_failure
from .notifications import Notification, NotificationCallback, PointsWritten, StateChanged
from .protocol import Write
from .reasons import ManagerError, Reason
from .requests import channel_json, parse_group_request, parse_scan_reference
from .retries import Retries, RetryKey
from .states import Command, Phase, Transition, refusal, transition
from .watchers import Periodic

__all__ = ["RECOVERY_MODES", "ServiceCore"]

logger = logging.getLogger(__name__)

RECOVERY_MODES = ("close", "resume")


class ServiceCore(LeaseGuard, abc.ABC):
    """See the module docstring; a data model's service provides the abstract hooks."""

    def __init__(self, session: Session, redis_url: str, *, owner: str, recovery: str,
                 on_change: NotificationCallback, names: Names) -> None:
        if recovery not in RECOVERY_MODES:
            raise ValueError(f"recovery must be one of {RECOVERY_MODES}, not {recovery!r}")
        self.session = session
        self.redis_url = redact(redis_url)
        self.recovery = recovery
        self.on_change = on_change
        self.names = names  # of the settings the status may tell to change
        self._record_key = running.record_key(session.name, owner)
        self._lock = threading.RLock()
        self.phase = Phase.IDLE
        self._health: Periodic | None = None
        self._checked = False  # Redis re-read since the last failure (and at start)
        self._recovered = False  # a sequence left open by a previous run was dealt with
        self._retries = Retries()  # the write whose outcome is unknown
        self.connected = True
        self.connection_error = ""
        self.lost_message = ""
        self._closed = False  # no notification after close (threads may still be finishing)
        self._far: dict[tuple[str, int], int] = {}  # pending numbers far beyond the counter
        self._guard_with(getattr(session.client, "lease", None))

    # -- notifications ---------------------------------------------------------------------------
    def _notify(self, notification: Notification) -> None:
        if not self._closed:
            self.on_change(notification)

    def _show(self, points: Mapping[str, Any]) -> None:
        """Notify points of custom channels that landed unnotified (found by a re-read)."""
        for name, block in points.items():
            if len(block):
                self._notify(PointsWritten(name, numpy.asarray(block,
                                                               dtype=self._specs[name].dtype)))

    def _notify_state(self) -> None:
        self._notify(StateChanged(self.phase, self.connected, self.status()))

    def status(self) -> str:
        """What the device is doing, and what to do next."""
        if not self.connected:
            return self.connection_error
        if self.phase is Phase.LOST:
            return self.lost_message
        if self.phase is Phase.RUNNING:
            pending = self.pending
            waiting = f" Waiting for scans {list(pending)}." if pending else ""
            far = {n: self._far[self.sequence_name, n] for n in pending
                   if (self.sequence_name, n) in self._far}
            return (f"Running sequence {self.sequence_name}: add scans, emit channel points, "
                    f"then End or Abort it.{waiting}"
                    + (far_beyond(far, self._counted_in) if far else ""))
        last = (f" Last sequence: {self.sequence_name} ({self.state.name})."
                if self.sequence_name else "")
        return f"Idle: Start a sequence in session {self.session.name!r} ({self.redis_url}).{last}"

    # -- life cycle ----------------------------------------------------------------------------
    def open(self, health_period: float) -> None:
        """Deal with a sequence a previous run left open (when Redis answers: else as soon as it
        does), then check Redis every ``health_period`` seconds."""
        with self._lock:
            self._notify_state()
            try:
                self._sync(probe=True)
            except ManagerError:
                pass  # reported through State; the health check retries
        self._health = Periodic(self.check_health, health_period, "tango_groups-health")

    def _stop_health(self) -> None:
        if self._health is not None:
            self._health.stop()

    def _silence(self) -> None:
        """Notify nothing more: a health check or a follower still finishing must not report
        the failures of the clients its owner closes next."""
        with self._lock:
            self._closed = True

    def check_health(self) -> bool:
        """Ping Redis (and check that the open sequence still exists); after a failure, re-read
        Redis (``_sync``). Returns whether Redis answered."""
        name = self.sequence_name if self.phase is Phase.RUNNING else None
        try:
            if self.lease is not None and self.lease.token is not None:
                self.lease.renew(self.session.client)
            exists = self._probe(name)
        except RedisError as error:
            with self._lock:
                self._unreachable(error)
            return False
        with self._lock:
            if not exists and self.phase is Phase.RUNNING and self.sequence_name == name:
                self._sequence_lost()
            try:
                self._sync(probe=True)
            except ManagerError:
                return False
        return True

    # -- failures and re-reads -------------------------------------------------------------------
    def _unreachable(self, error: Exception) -> ManagerError:
        """Record a Redis failure (Redis is re-read before the next write) and the refusal."""
        if isinstance(error, LeaseLostError):
            return self._lease_lost(error)
        message = redis_failure(self.redis_url, error, self.names)
        changed = self.connected or self.connection_error != message
        self._checked = False
        self.connected, self.connection_error = False, message
        if changed:
            self._notify_state()
        return ManagerError(Reason.REDIS_UNAVAILABLE, message)

    def _redis(self, action: Callable[[], Any], uncertain: RetryKey | None = None) -> Any:
        """Run a Redis action; a failure becomes ``RedisUnavailable``. ``uncertain``: the key of
        the request, when the action writes (a retry of it is recognised after the re-read)."""
        try:
            return action()
        except RedisError as error:
            if uncertain is not None and not isinstance(error, LeaseLostError):
                self._retries.failed(uncertain)
            raise self._unreachable(error) from None

    def _sync(self, probe: bool = False) -> None:
        """Before writing after a failure (or at start): Redis answers, a sequence left open by a
        previous run is dealt with, and the open sequence is re-read from Redis."""
        refusal = self._lease_refusal
        if refusal is not None and (refusal.reason is Reason.LEASE_LOST or not probe):
            raise refusal
        if self._checked:
            return
        if not (self.connected or probe):
            raise ManagerError(Reason.REDIS_UNAVAILABLE, self.connection_error)
        self._redis(lambda: self._probe(None))
        self._hold_lease()
        if not self._recovered:
            self._recover()
        if self.phase is Phase.RUNNING:
            self._resync_open()
        self._checked = True
        if not self.connected:
            self.connected, self.connection_error = True, ""
            self._notify_state()

    def _sequence_lost(self) -> None:
        self._lose(f"Redis no longer holds sequence {self.sequence_name} (restarted without its "
                   "data?): its scans and points are gone for its readers. End or Abort to clear "
                   "it, then Start a new sequence.")

    def give_up(self, why: str) -> None:
        """The running sequence can no longer be written as it should (``why``): LOST; End or
        Abort closes it once Redis answers."""
        with self._lock:
            if self.phase is Phase.RUNNING:
                self._lose(f"Sequence {self.sequence_name}: {why} End or Abort closes it once "
                           "Redis answers; then Start a new sequence.")

    def _lose(self, message: str) -> None:
        self._abandon()
        self.phase = transition(self.phase, Transition.LOST)
        self.lost_message = message
        logger.error(message)
        self._notify_state()

    # -- what every command checks ---------------------------------------------------------------
    def _begin(self, command: Command) -> None:
        """Re-read Redis if needed, then refuse ``command`` if the phase does not take it
        (``LEASE_EACH_COMMAND``: check the lease first, for writes it does not fence)."""
        if self.LEASE_EACH_COMMAND:
            self._check_lease()
        self._sync()
        reason = refusal(self.phase, command)
        if reason is Reason.ALREADY_RUNNING:
            raise ManagerError(reason, f"sequence {self.sequence_name} is running: End or Abort "
                                       "it first")
        if reason is Reason.NOT_RUNNING:
            raise ManagerError(reason, "no sequence is running: Start one first")
        if reason is Reason.SEQUENCE_LOST:
            raise ManagerError(reason, self.lost_message)

    def _not_itself(self, reference: int | str) -> None:
        """Refuse the running sequence's own number or name as a scan to reference."""
        if reference in (self.sequence_number, self.sequence_name):
            scan = f"scan {reference}" if isinstance(reference, int) else reference
            raise ManagerError(Reason.NOT_A_SCAN, f"{scan} is the running sequence itself")

    def _not_pending(self, number: int) -> int:
        """Refuse a number the running sequence awaits already."""
        if number in self.pending:
            raise ManagerError(Reason.DUPLICATE_SCAN, f"scan {number} is already pending in "
                                                      f"sequence {self.sequence_name}")
        return number

    def _points(self, channel: str, data: Any, flat: bool) -> numpy.ndarray:
        """``data`` for custom channel ``channel`` of the running sequence, checked and converted
        (``flat`` data reshaped to the channel's point shape, as a DevVarDoubleArray carries it)."""
        spec = self._specs.get(channel)
        if spec is None:
            raise ManagerError(Reason.UNKNOWN_CHANNEL,
                               f"sequence {self.sequence_name} has no channel {channel!r} "
                               f"(its channels: {', '.join(self._specs) or 'none'}): a "
                               "sequence takes points on the channels listed in Start's "
                               f"\"channels\" only, e.g. Start('{{\"channels\": "
                               f"[\"{channel}\"]}}')")
        block = numpy.asarray(data)
        if flat:
            size = math.prod(spec.shape)
            if block.ndim != 1 or block.size % size:
                raise ManagerError(Reason.BAD_DATA,
                                   f"channel {channel!r} takes points of shape {spec.shape}: "
                                   f"send a multiple of {size} values, not {block.size}")
            block = block.reshape((-1,) + spec.shape)
        try:
            return spec.points(block)
        except ChannelDataError as error:
            raise ManagerError(Reason.BAD_DATA, str(error)) from None

    def add_scan(self, text: str) -> str:
        """Reference a scan (number, db_name, key); returns its name, or ``pending:<n>``."""
        reference = parse_scan_reference(text)
        with self._lock:
            return self.plan_add(reference)()

    def abort(self) -> str:
        return self.end(ScanState.USER_ABORTED)

    def create_group(self, request: str) -> str:
        """A group of existing scans in one call, independent of the running sequence: every
        scan is checked (``plan_group``) before anything is written; returns its name."""
        references, title, scan_info = parse_group_request(request)
        return self.plan_group(references, title, scan_info)()

    # -- crash recovery ------------------------------------------------------------------------
    def _recover(self) -> None:
        """Close (or resume) the sequence a previous run of this owner left open."""
        record = self._redis(lambda: running.load(self.session.client, self._record_key))
        if record is not None:
            self._left_open(record)
        self._recovered = True

    def _save_record(self, pending: tuple[int, ...] = ()) -> None:
        """The running record of the open sequence (what the next run recovers)."""
        running.save(self.session.client, self._record_key, running.RunningRecord(
            self.sequence_name, tuple(self._channel_json()), pending))

    def _clear_record(self) -> None:
        """No sequence open: no record (when Redis fails, the next ``_sync`` clears it)."""
        try:
            self._redis(lambda: running.clear(self.session.client, self._record_key))
        except ManagerError:
            self._recovered = False

    def _note_far(self, number: int, last: int) -> None:
        """A pending ``number`` beyond the last allocated one (``last``) by far (a typo, most
        likely) is named in the status."""
        if number > last + FAR_BEYOND:
            self._far[self.sequence_name, number] = last

    def _channel_json(self) -> list[dict[str, Any]]:
        return [channel_json(spec) for spec in self._specs.values()]

    # -- the data model's side -------------------------------------------------------------------
    _specs: dict[str, ChannelSpec]  # the custom channels of the open sequence
    sequence_name: str
    sequence_number: int
    state: ScanState  # of the current (or last) sequence
    _counted_in: str  # where the scan numbers are counted (named in the status)

    @property
    @abc.abstractmethod
    def pending(self) -> tuple[int, ...]:
        """The scan numbers added to the open sequence that it still waits for."""

    @abc.abstractmethod
    def plan_add(self, reference: int | str) -> Write:
        """Every check of ``add_scan`` (a refusal writes nothing); the write, not done yet."""

    @abc.abstractmethod
    def end(self, state: ScanState | None = None) -> str:
        """End the sequence (``state`` forced, or after waiting for pending scans); returns the
        final state's name."""

    @abc.abstractmethod
    def _probe(self, name: str | None) -> bool:
        """Ping Redis; with ``name``: whether the sequence of that name still exists there."""

    @abc.abstractmethod
    def _resync_open(self) -> None:
        """Re-read the open sequence after a failure (``_sequence_lost`` when it vanished,
        ``_retries.landed`` for the uncertain write)."""

    @abc.abstractmethod
    def _left_open(self, record: running.RunningRecord) -> None:
        """Close, or resume, the sequence of a previous run's record (and clear the record
        unless the sequence runs again)."""

    @abc.abstractmethod
    def _abandon(self) -> None:
        """Follow nothing more for the open sequence (it is lost, or the lease is)."""

    @abc.abstractmethod
    def _finish(self, state: ScanState | None) -> ScanState:
        """End the open sequence in Redis and go IDLE (the phase stays when Redis fails)."""

    @abc.abstractmethod
    def plan_group(self, references: list[int | str], title: str | None,
                   scan_info: dict[str, Any]) -> Write:
        """Every check of a group of these scans; the write, not done yet."""
