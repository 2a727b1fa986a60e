"""The manager's link to the data Redis: failures, re-reads after them, crash recovery, health.

``Link`` is the part of ``Manager`` that deals with a Redis that fails or was left in an unknown
state; the manager adds the commands. It keeps:

* the connection flag and the message a refused command gets (``RedisUnavailable``): ``_redis``
  runs every Redis action of a command and turns a failure into that refusal;
* the *uncertain* write: a write that failed without telling whether it landed, re-read before
  the next write (``_sync``), so that repeating the command that failed writes nothing twice;
* crash recovery: the running record of this owner (``tango_groups.data.running``) names a
  sequence a previous run left open, closed (END, KILLED) or, with ``recovery="resume"``, taken
  over (``_recover``);
* the device's lease (``tango_groups.data.lease``, when the session's client is fenced): acquired
  before anything is recovered or written (a server whose lease another holds stands by, FAULT,
  commands refused with ``LeaseHeld``, and takes over once that lease expired), renewed by the
  health check. Once lost (another server took over), the device is FAULT for good, commands are
  refused with ``LeaseLost`` and the fenced client writes nothing more: Init or a restart makes
  it stand by;
* the health check (``open``): every period, renew the lease, ping Redis and check that the open
  sequence still exists (LOST when it vanished), then re-read after a failure. While Redis is known to fail,
  commands are refused at once (a hung Redis would make each wait ``RedisTimeout``, and Tango
  clients queued behind them time out): only the health check tries Redis again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy

from ..bliss1 import keys
from ..data import running
from ..data.channel import ChannelDataError, ChannelSpec
from ..data.connection import RedisAuthenticationError, RedisError, RedisTimeoutError, probe, redact
from ..data.lease import LeaseLostError
from ..scanning.scan import ScanState
from ..scanning.sequence import ScanSequenceError, Sequence
from ..session import Session
from .lease_guard import LeaseGuard
from .notifications import Notification, NotificationCallback, StateChanged
from .requests import ManagerError, channel_json, parse_channel, parse_group_request
from .states import Command, Phase, refusal, transition
from .watchers import Periodic

__all__ = ["RECOVERY_MODES", "Link", "Points"]

logger = logging.getLogger(__name__)

RECOVERY_MODES = ("close", "resume")


@dataclasses.dataclass(frozen=True)
class _Uncertain:
    """A write that failed without telling whether it landed: the request that made it (``key``),
    and whether the re-read after the failure found it in Redis."""

    key: tuple[Any, ...]
    landed: bool = False


class Points:
    """The points of an emit, in the key of a write whose outcome is unknown: compared (byte for
    byte) only when a request repeats one on the same channel."""

    def __init__(self, block: numpy.ndarray) -> None:
        self.block = block

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Points) and (self.block.dtype, self.block.shape) == (
            other.block.dtype, other.block.shape) and self.block.tobytes() == other.block.tobytes()

    __hash__ = None  # type: ignore[assignment]


def _refused_credentials(url: str, error: Exception) -> str:
    """The status while Redis refuses the credentials (each new connection reads the password
    file again: fixing it is enough). ``url`` is redacted; redis-py's text names no password."""
    user = urlsplit(url).username or "default"
    return (f"Redis at {url} refused the credentials of user {user!r} ({error}). Fix the "
            "password in RedisPasswordFile (its first line) or the user in RedisURL: the device "
            "retries every HealthCheckPeriod and recovers by itself once Redis accepts them.")


def _untrusted_certificate(url: str, error: Exception) -> str:
    """The status while TLS verification of Redis's certificate fails (``url`` is redacted)."""
    return (f"Redis at {url} presented a TLS certificate that was not verified ({error}). Check "
            "that ssl_ca_certs in RedisURL names the file of the CA that signed the server's "
            "certificate and that the certificate names the host of RedisURL. The device retries "
            "every HealthCheckPeriod (each connection reads the CA file again) and recovers by "
            "itself once the certificate is verified; a changed RedisURL needs Init.")


class Link(LeaseGuard):
    """See the module docstring; ``Manager`` provides the hooks at the end of the class."""

    def __init__(self, session: Session, redis_url: str, *, owner: str, recovery: str,
                 on_change: NotificationCallback) -> None:
        if recovery not in RECOVERY_MODES:
            raise ValueError(f"recovery must be one of {RECOVERY_MODES}, not {recovery!r}")
        self.session = session
        self.redis_url = redact(redis_url)
        self.recovery = recovery
        self.on_change = on_change
        self._record_key = running.record_key(session.name, owner)
        self._lock = threading.RLock()
        self.phase = Phase.IDLE
        self._health: Periodic | None = None
        self._checked = False  # Redis re-read since the last failure (and at start)
        self._recovered = False  # a sequence left open by a previous run was dealt with
        self._uncertain: _Uncertain | None = None
        self.connected = True
        self.connection_error = ""
        self.lost_message = ""
        self._closed = False  # no notification after close (threads may still be finishing)
        self._guard_with(getattr(session.client, "lease", None))

    # -- notifications ---------------------------------------------------------------------------
    def _notify(self, notification: Notification) -> None:
        if not self._closed:
            self.on_change(notification)

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
            return (f"Running sequence {self.sequence_name}: add scans, emit channel points, "
                    f"then End or Abort it.{waiting}")
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
        timed_out = isinstance(error, RedisTimeoutError)
        message = (_refused_credentials(self.redis_url, error)
                   if isinstance(error, RedisAuthenticationError) else
                   _untrusted_certificate(self.redis_url, error)
                   if "CERTIFICATE_VERIFY_FAILED" in str(error) else  # OpenSSL's reason
                   f"Redis at {self.redis_url} is unreachable ({type(error).__name__}: {error}). "
                   + ("A write that timed out may still land: the device re-reads Redis before "
                      "writing again, so repeating the command is safe. " if timed_out else "")
                   + "Check that the data Redis runs and that the RedisURL property is right; the "
                     "device recovers by itself once it answers.")
        changed = self.connected or self.connection_error != message
        self._checked = False
        self.connected, self.connection_error = False, message
        if changed:
            self._notify_state()
        return ManagerError("RedisUnavailable", message)

    def _redis(self, action: Callable[[], Any], uncertain: tuple[Any, ...] | None = None) -> Any:
        """Run a Redis action; a failure becomes ``RedisUnavailable``. ``uncertain``: the key of
        the request, when the action writes (a retry of it is recognised after the re-read)."""
        try:
            return action()
        except RedisError as error:
            if uncertain is not None and not isinstance(error, LeaseLostError):
                self._uncertain = _Uncertain(uncertain)
            raise self._unreachable(error) from None

    def _sync(self, probe: bool = False) -> None:
        """Before writing after a failure (or at start): Redis answers, a sequence left open by a
        previous run is dealt with, and the open sequence is re-read from Redis."""
        refusal = self._lease_refusal
        if refusal is not None and (refusal.reason == "LeaseLost" or not probe):
            raise refusal
        if self._checked:
            return
        if not (self.connected or probe):
            raise ManagerError("RedisUnavailable", self.connection_error)
        self._redis(lambda: self._probe(None))
        self._hold_lease()
        if not self._recovered:
            self._recover()
        sequence = self._open_sequence()
        if sequence is not None:
            self._resync(sequence)
        self._checked = True
        if not self.connected:
            self.connected, self.connection_error = True, ""
            self._notify_state()

    def _probe(self, name: str | None) -> bool:
        """Ping Redis; with ``name``: whether the sequence of that name still exists there."""
        return probe(self.session.client, name)

    def _resync(self, sequence: Sequence) -> None:
        if not self._redis(lambda: self._probe(sequence.db_name)):
            self._sequence_lost()
            return
        found = self._redis(sequence.resync)
        self._resynced(found)
        if self._uncertain is not None:
            kind, target = self._uncertain.key[:2]
            if kind == "add":
                landed = target in [str(name) for name in found.get(keys.SCANS_CHANNEL, ())] or (
                    target in [int(n) for n in found.get(keys.SCAN_NUMBERS_CHANNEL, ())])
            else:
                landed = target in found
            self._uncertain = dataclasses.replace(self._uncertain, landed=landed)

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
        self.lost_message = (f"Redis no longer holds sequence {self.sequence_name} (restarted "
                             "without its data?): its scans and points are gone for its readers. "
                             "End or Abort to clear it, then Start a new sequence.")
        logger.error(self.lost_message)
        self._notify_state()

    # -- what every command checks ---------------------------------------------------------------
    def _begin(self, command: Command) -> None:
        """Re-read Redis if needed, then refuse ``command`` if the phase does not take it
        (``LEASE_EACH_COMMAND``: check the lease first, for writes it does not fence)."""
        if self.LEASE_EACH_COMMAND:
            self._check_lease()
        self._sync()
        reason = refusal(self.phase, command)
        if reason == "AlreadyRunning":
            raise ManagerError(reason, f"sequence {self.sequence_name} is running: End or Abort "
                                       "it first")
        if reason == "NotRunning":
            raise ManagerError(reason, "no sequence is running: Start one first")
        if reason == "SequenceLost":
            raise ManagerError(reason, self.lost_message)

    def _points(self, channel: str, data: Any, flat: bool) -> numpy.ndarray:
        """``data`` for custom channel ``channel`` of the running sequence, checked and converted
        (``flat`` data reshaped to the channel's point shape, as a DevVarDoubleArray carries it)."""
        spec = self._specs.get(channel)
        if spec is None:
            raise ManagerError("UnknownChannel",
                               f"sequence {self.sequence_name} has no channel {channel!r} "
                               f"(its channels: {', '.join(self._specs) or 'none'}): a "
                               "sequence takes points on the channels listed in Start's "
                               f"\"channels\" only, e.g. Start('{{\"channels\": "
                               f"[\"{channel}\"]}}')")
        block = numpy.asarray(data)
        if flat:
            size = math.prod(spec.shape)
            if block.ndim != 1 or block.size % size:
                raise ManagerError("BadData",
                                   f"channel {channel!r} takes points of shape {spec.shape}: "
                                   f"send a multiple of {size} values, not {block.size}")
            block = block.reshape((-1,) + spec.shape)
        try:
            return spec.points(block)
        except ChannelDataError as error:
            raise ManagerError("BadData", str(error)) from None

    def create_group(self, request: str) -> str:
        """A group of existing scans in one call, independent of the running sequence: every
        scan is checked (``group_members``) before anything is written; returns its name."""
        references, title, scan_info = parse_group_request(request)
        return self.write_group(self.group_members(references), title, scan_info)

    # -- crash recovery ------------------------------------------------------------------------
    def _recover(self) -> None:
        """Close (or resume) the sequence a previous run of this owner left open."""
        record = self._redis(lambda: running.load(self.session.client, self._record_key))
        if record is None:
            self._recovered = True
            return
        try:
            specs = [parse_channel(item) for item in record.channels]
            sequence = self._take_over(record, specs)
        except (ManagerError, ScanSequenceError) as error:
            if isinstance(error, ManagerError) and error.reason.endswith("RedisUnavailable"):
                raise
            logger.warning("not recovering %s: %s", record.db_name, error)
            self._redis(lambda: running.clear(self.session.client, self._record_key))
            self._recovered = True
            return
        self._recovered = True
        if self.recovery == "resume" and sequence.state is ScanState.STARTING:
            logger.warning("resumed sequence %s left open by a previous run", record.db_name)
            self._resume_pending(record.pending)
        else:  # a sequence that never reached STARTING cannot be resumed: close it too
            logger.warning("closing sequence %s left open by a previous run", record.db_name)
            self._finish(ScanState.KILLED)

    def _channel_json(self) -> list[dict[str, Any]]:
        return [channel_json(spec) for spec in self._specs.values()]

    # -- hooks of the manager --------------------------------------------------------------------
    _specs: dict[str, ChannelSpec]
    sequence_name: str
    state: ScanState
    pending: tuple[int, ...]

    def _open_sequence(self) -> Sequence | None:
        raise NotImplementedError

    def _take_over(self, record: running.RunningRecord, specs: list[ChannelSpec]) -> Sequence:
        raise NotImplementedError

    def _resume_pending(self, numbers: tuple[int, ...]) -> None:
        raise NotImplementedError

    def _resynced(self, found: dict[str, Any]) -> None:
        raise NotImplementedError

    def _finish(self, state: ScanState | None) -> ScanState:
        raise NotImplementedError

    def group_members(self, references: list[int | str]) -> list[Any]:
        raise NotImplementedError

    def write_group(self, members: list[Any], title: str | None,
                    scan_info: dict[str, Any]) -> str:
        raise NotImplementedError
