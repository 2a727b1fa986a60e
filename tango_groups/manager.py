"""The SequenceManager's Tango-free core: one live sequence at a time, driven by commands.

``Manager`` owns what the Tango device shows: the current (or last) sequence, the scans it
references, the scans added by number that have not started yet, the custom channels and their
points. Every operation writes through ``tango_groups.scanning.group.Sequence`` (so the Redis
side is exactly what the Python API writes) and then reports which of its values changed through
one callback, ``on_change(names)``; the device turns that into change events. Names are the
device's attribute names (``SequenceName``, ``ScanNumbers``...), ``State`` for the device state,
and ``channel:<name>`` for the points of a custom channel.

Scans are added by db_name or by number. A number the scan-saving container has not allocated
yet (``last_scan_number`` below it) is *pending*: a greenlet follows the container's new scans
(``walk_on_new_events``) and references the scan the moment its PREPARED event is written, as
Bliss does for a scan added before it runs. ``end()`` waits up to ``end_timeout`` for pending
scans, then ends the sequence; scans that never started make it fail with Bliss's message after
the sequence has been ended in Redis.

Concurrency: the device runs in gevent green mode, where Tango does not serialise commands. All
operations take one gevent lock, so a command and the greenlet publishing a pending scan never
interleave their Redis writes. Nothing here may block the hub without yielding: the manager
expects ``gevent.monkey.patch_all(thread=False)`` (the server entry point does it).

Refusals raise ``ManagerError`` with a stable ``reason`` (``SequenceManager_*``) and write nothing;
an unreachable Redis raises ``SequenceManager_RedisUnavailable`` and turns ``connected`` off until
a health check (``check_connection``, called periodically by ``start_monitoring``) succeeds.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from collections.abc import Callable, Collection
from typing import Any

import gevent
import gevent.event
import gevent.lock
import numpy
import redis

from .data import encoding, keys
from .data.channel import ChannelDataError
from .data.connection import redact
from .data.node import DataNode, EventType, ScanNode, WalkIterator, get_node
from .scanning.chain import AcquisitionChannel
from .scanning.group import (
    Group,
    ScanSequenceError,
    Sequence,
    SequenceContext,
    find_scan_node,
    scans_not_finished,
)
from .scanning.scan import ScanState
from .session import Session

__all__ = ["ChannelDecl", "Manager", "ManagerError", "parse_scan_list", "parse_start_request"]

ATTRIBUTES = ("SequenceName", "SequenceNumber", "Title", "SequenceState", "ScanNumbers",
              "ScanNames", "ScanCount", "PendingScans", "ChannelNames", "ScanInfo")
CHANNEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
CHANNEL_KINDS = "biuf"  # bool, signed and unsigned integers, floats


class ManagerError(Exception):
    """A refused request: ``reason`` is stable (``SequenceManager_*``), the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = f"SequenceManager_{reason}"
        self.message = message


@dataclasses.dataclass(frozen=True)
class ChannelDecl:
    """A custom channel as ``Start`` declares it."""

    name: str
    dtype: numpy.dtype
    shape: tuple[int, ...] = ()
    unit: str | None = None

    @classmethod
    def from_json(cls, item: Any) -> ChannelDecl:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise ManagerError("BadChannel", f"a channel is a name or an object with a \"name\", "
                                             f"not {item!r}")
        unknown = set(item) - {"name", "dtype", "shape", "unit"}
        if unknown:
            raise ManagerError("BadChannel", f"unknown channel field(s) {sorted(unknown)}: use "
                                             "name, dtype, shape, unit")
        name = item["name"]
        if not isinstance(name, str) or not CHANNEL_NAME.fullmatch(name):
            raise ManagerError("BadChannel", f"invalid channel name {name!r}: use a letter then "
                                             "letters, digits or '_' (it names a Tango attribute)")
        try:
            dtype = numpy.dtype(item.get("dtype", "float64"))
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in CHANNEL_KINDS:
            raise ManagerError("BadChannel", f"channel {name!r}: unsupported dtype "
                                             f"{item.get('dtype')!r}: use bool, int8..int64, "
                                             "uint8..uint64, float32 or float64")
        shape = item.get("shape", [])
        if (not isinstance(shape, list) or len(shape) > 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                           for n in shape)):
            raise ManagerError("BadChannel", f"channel {name!r}: shape must be [] (scalar points), "
                                             f"[n] or [n, m] with positive sizes, not {shape!r}")
        unit = item.get("unit")
        if unit is not None and not isinstance(unit, str):
            raise ManagerError("BadChannel", f"channel {name!r}: unit must be a string")
        return cls(name, dtype, tuple(shape), unit)


def parse_start_request(text: str) -> tuple[str | None, dict[str, Any], list[ChannelDecl]]:
    """``Start``'s argument: empty, a title, or JSON ``{"title", "scan_info", "channels"}``."""
    text = text.strip()
    if not text.startswith("{"):
        return text or None, {}, []
    request = _json_object(text, "Start", {"title", "scan_info", "channels"})
    title = request.get("title")
    if title is not None and (not isinstance(title, str) or not title.strip()):
        raise ManagerError("BadRequest", "\"title\" must be a non-empty string")
    scan_info = request.get("scan_info", {})
    if not isinstance(scan_info, dict):
        raise ManagerError("BadRequest", "\"scan_info\" must be a JSON object")
    channels = request.get("channels", [])
    if not isinstance(channels, list):
        raise ManagerError("BadRequest", "\"channels\" must be a list of channel objects")
    decls = [ChannelDecl.from_json(item) for item in channels]
    names = [decl.name.lower() for decl in decls]
    if len(set(names)) != len(names):
        raise ManagerError("BadChannel", "channel names must be unique (case-insensitively)")
    return title, scan_info, decls


def parse_scan_list(text: str) -> tuple[list[str], str | None, dict[str, Any]]:
    """``CreateGroup``'s argument: JSON ``{"scans", "title", "scan_info"}``, a JSON list, or
    numbers / db_names separated by commas or blanks."""
    text = text.strip()
    title, scan_info, scans = None, {}, None
    if text.startswith("{"):
        request = _json_object(text, "CreateGroup", {"scans", "title", "scan_info"})
        scans, title = request.get("scans"), request.get("title")
        scan_info = request.get("scan_info", {})
        if not isinstance(scan_info, dict) or not (title is None or isinstance(title, str)):
            raise ManagerError("BadRequest", "\"title\" must be a string and \"scan_info\" an "
                                             "object")
    elif text.startswith("["):
        try:
            scans = json.loads(text)
        except json.JSONDecodeError as error:
            raise ManagerError("BadRequest", f"invalid JSON list: {error}") from None
    else:
        scans = text.replace(",", " ").split()
    if not isinstance(scans, list) or not scans or not all(
            isinstance(s, (str, int)) and not isinstance(s, bool) for s in scans):
        raise ManagerError("BadRequest", "give at least one scan: numbers or db_names, e.g. "
                                         "'12 13' or '{\"scans\": [12, 13], \"title\": \"t\"}'")
    return [str(s) for s in scans], title, scan_info


def _json_object(text: str, command: str, fields: set[str]) -> dict[str, Any]:
    try:
        request = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManagerError("BadRequest", f"{command}: invalid JSON: {error}") from None
    unknown = set(request) - fields
    if unknown:
        raise ManagerError("BadRequest", f"{command}: unknown field(s) {sorted(unknown)}; "
                                         f"allowed: {sorted(fields)}")
    return request


def decode_npy(payload: bytes) -> numpy.ndarray:
    """An array from ``.npy`` bytes (``numpy.save``); pickled object arrays are refused."""
    try:
        return numpy.load(io.BytesIO(payload), allow_pickle=False)
    except ValueError as error:
        raise ManagerError("BadData", f"not .npy data without pickles ({error}): send the bytes "
                                      "numpy.save writes") from None


class Manager:
    """One sequence at a time in ``session``; see the module docstring."""

    def __init__(self, session: Session, redis_url: str, *, end_timeout: float = 2.0,
                 on_change: Callable[[tuple[str, ...]], None] = lambda names: None,
                 reserved_names: Collection[str] = ()) -> None:
        self.session = session
        self.reserved_names = {name.lower() for name in reserved_names}
        self.redis_url = redact(redis_url)
        self.end_timeout = end_timeout
        self.on_change = on_change
        self._lock = gevent.lock.RLock()
        self._sequence: Sequence | None = None
        self._context: SequenceContext | None = None
        self._watchers: list[tuple[WalkIterator, gevent.Greenlet]] = []
        self._new_scans: WalkIterator | None = None  # the watch of the scan-saving container
        self._pending: dict[int, None] = {}  # insertion-ordered set of scan numbers
        self._no_pending = gevent.event.Event()
        self._monitor: gevent.Greenlet | None = None
        self.connected = True
        self.connection_error = ""
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
        return self._sequence is not None

    @property
    def pending(self) -> list[int]:
        return list(self._pending)

    def points(self, channel: str) -> numpy.ndarray:
        """Every point emitted on ``channel`` in the current (or last) sequence."""
        decl = self.channels[channel]
        blocks = self._points[channel]
        if not blocks:
            return numpy.empty((0,) + decl.shape, dtype=decl.dtype)
        if len(blocks) > 1:
            blocks[:] = [numpy.concatenate(blocks)]
        return blocks[0]

    def _notify(self, *names: str) -> None:
        self.on_change(names)

    # -- Redis health --------------------------------------------------------------------------
    def check_connection(self) -> bool:
        """Ping the data Redis; report a change of ``connected`` (name ``State``)."""
        try:
            self.session.client.ping()
        except redis.RedisError as error:
            self._lost(error)
        else:
            if not self.connected:
                self.connected, self.connection_error = True, ""
                self._notify("State")
        return self.connected

    def start_monitoring(self, period: float) -> None:
        """Check the connection every ``period`` seconds in a greenlet."""

        def loop() -> None:
            while True:
                self.check_connection()
                gevent.sleep(period)

        self.stop_monitoring()
        self._monitor = gevent.spawn(loop)

    def stop_monitoring(self) -> None:
        if self._monitor is not None:
            self._monitor.kill(block=False)
            self._monitor = None

    def _lost(self, error: Exception) -> ManagerError:
        message = (f"Redis at {self.redis_url} is unreachable ({type(error).__name__}: {error}). "
                   "Check that the data Redis runs and that the RedisURL property is right; the "
                   "device recovers by itself once it answers.")
        changed = not self.connected or self.connection_error != message
        self.connected, self.connection_error = False, message
        if changed:
            self._notify("State")
        return ManagerError("RedisUnavailable", message)

    def _redis(self, action: Callable[[], Any]) -> Any:
        """Run a Redis-writing action, turning connection failures into a clear refusal."""
        try:
            return action()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise self._lost(error) from None
        except RuntimeError as error:  # Sequence.start wraps what failed while preparing
            if isinstance(error.__cause__, (redis.ConnectionError, redis.TimeoutError)):
                raise self._lost(error.__cause__) from None
            raise

    # -- commands ------------------------------------------------------------------------------
    def start(self, request: str) -> str:
        """Create the sequence (scan_group) and return its db_name."""
        title, scan_info, decls = parse_start_request(request)
        for decl in decls:
            if decl.name.lower() in self.reserved_names:
                raise ManagerError("BadChannel", f"channel name {decl.name!r} is taken by a "
                                                 "device attribute: choose another name")
        with self._lock:
            if self._sequence is not None:
                raise ManagerError("AlreadyRunning",
                                   f"sequence {self.sequence_name} is running: End or Abort it "
                                   "first")
            sequence = Sequence(scan_info=scan_info, title=title, session=self.session)
            for decl in decls:
                sequence.add_custom_channel(
                    AcquisitionChannel(decl.name, decl.dtype.name, decl.shape, decl.unit))
            self._context = self._redis(sequence.start)
            self._sequence = sequence
            self.state = sequence.state
            self.title = sequence.title
            self.sequence_name = sequence.db_name
            self.sequence_number = sequence.scan_nb
            self.scan_info = sequence.scan_info
            self.scan_numbers, self.scan_names = [], []
            self._pending.clear()
            self._no_pending.set()
            self.channels = {decl.name: decl for decl in decls}
            self._points = {decl.name: [] for decl in decls}
            self._notify("State", *ATTRIBUTES, *(f"channel:{name}" for name in self.channels))
            return self.sequence_name

    def add_scan(self, reference: str) -> str:
        """Reference a scan by number or db_name; returns its db_name, or ``pending:<n>``."""
        reference = reference.strip()
        with self._lock:
            self._require_running()
            node = None
            if reference.isdigit():
                number = int(reference)
                if number in self._pending or number in self.scan_numbers:
                    raise ManagerError("DuplicateScan",
                                       f"scan {number} is already in sequence {self.sequence_name}")
                if number > self._last_scan_number():
                    # follow new scans first, then look again: a scan allocated in between is
                    # either found now or registered after the watch started
                    self._watch_new_scans()
                    node = self._find(number) if number <= self._last_scan_number() else None
                    if node is None:
                        return self._add_pending(number)
            node = node or self._resolve(reference)
            if node.db_name in self.scan_names:
                raise ManagerError("DuplicateScan",
                                   f"{node.db_name} is already in sequence {self.sequence_name}")
            number, prepared = self._redis(lambda: _number_and_prepared(node))
            if not prepared:
                self._watch(node.walk_events(include_filter="scan", wait=True))
                return self._add_pending(number)
            self._publish(node, number)
            return node.db_name

    def emit(self, channel: str, data: Any, flat: bool = False) -> int:
        """Append points to a custom channel; ``flat`` data is reshaped to the channel's point
        shape (what a DevVarDoubleArray carries). Returns the number of points written."""
        with self._lock:
            self._require_running()
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
            try:
                count = self._redis(lambda: self._sequence.custom_channels[channel].emit(block))
            except ChannelDataError as error:
                raise ManagerError("BadData", str(error)) from None
            self._points[channel].append(
                numpy.asarray(block, dtype=decl.dtype).reshape((count,) + decl.shape))
            self._notify(f"channel:{channel}")
            return count

    def end(self, state: ScanState | None = None) -> str:
        """End the sequence (after waiting up to ``end_timeout`` for pending scans, unless a state
        is forced); returns the final state's name."""
        with self._lock:
            self._require_running()
            sequence = self._sequence
        if state is None:
            self._no_pending.wait(self.end_timeout)  # what is still pending is reported below
        with self._lock:
            if self._sequence is not sequence:
                raise ManagerError("NotRunning", "the sequence was ended meanwhile")
            self._stop_watchers()
            unfinished = list(self._pending)
            final = self._redis(lambda: sequence.end(state))
            self._sequence = self._context = None
            self._pending.clear()
            self._no_pending.set()
            self.state = final
            self.scan_info = sequence.scan_info
            self._notify("State", "SequenceState", "PendingScans", "ScanInfo")
            if unfinished and state is None:
                error = scans_not_finished(sequence.title)
                raise ManagerError("ScansNotFinished", f"{error} (scans {unfinished} never "
                                                       f"started within {self.end_timeout} s)")
            return final.name

    def abort(self) -> str:
        return self.end(ScanState.USER_ABORTED)

    def create_group(self, request: str) -> str:
        """``Group`` of existing scans in one call; returns the group's db_name."""
        references, title, scan_info = parse_scan_list(request)
        with self._lock:
            nodes = [self._resolve(reference) for reference in references]
            if len({node.db_name for node in nodes}) != len(nodes):
                raise ManagerError("DuplicateScan", "a scan is listed twice")
            group = self._redis(lambda: Group(*nodes, title=title, scan_info=scan_info,
                                              session=self.session))
            return group.db_name

    def close(self) -> None:
        """Stop the greenlets; a running sequence is ended as KILLED, so that readers waiting for
        its END are released (when Redis does not answer, it stays as it is)."""
        self.stop_monitoring()
        if self._sequence is not None:
            try:
                self.end(ScanState.KILLED)
            except ManagerError:
                pass  # Redis is gone: nothing more can be written
        self._stop_watchers()

    # -- helpers -------------------------------------------------------------------------------
    def _stop_watchers(self) -> None:
        """Stop following pending scans (their greenlets end within the walks' block time)."""
        for walk, _ in self._watchers:
            walk.stop()
        gevent.joinall([greenlet for _, greenlet in self._watchers])
        self._watchers.clear()
        self._new_scans = None

    def _require_running(self) -> None:
        if self._sequence is None:
            raise ManagerError("NotRunning", "no sequence is running: Start one first")

    def _last_scan_number(self) -> int:
        parent = self.session.scan_saving_db_name
        last = self._redis(lambda: self.session.client.hget(parent, keys.SCAN_COUNTER))
        return int(last or 0)

    def _watch_new_scans(self) -> None:
        """Follow the scans registered from now on in the scan-saving container (where scan
        numbers live; created when missing): one watch serves every pending number."""
        if self._new_scans is None:
            def walk() -> WalkIterator:
                parent = get_node(self.session.scan_saving_parent, connection=self.session.client)
                return parent.walk_on_new_events(include_filter="scan", wait=True)

            self._new_scans = self._redis(walk)
            self._watch(self._new_scans)

    def _find(self, number: int) -> DataNode | None:
        try:
            return self._redis(lambda: find_scan_node(self.session, number))
        except ScanSequenceError:
            return None

    def _resolve(self, reference: str) -> DataNode:
        """The scan node a number or db_name names, or a clear refusal."""
        if reference.isdigit():
            node = self._find(int(reference))
            if node is None:
                raise ManagerError("UnknownScan",
                                   f"no scan number {reference} in "
                                   f"{self.session.scan_saving_db_name} (expired, not a scan, or "
                                   "never written); add it by db_name if it lives elsewhere")
            return node
        node = self._redis(lambda: get_node(reference, connection=self.session.client))
        if node is None:
            raise ManagerError("UnknownScan", f"no node {reference!r} in Redis (expired, or never "
                                              "written): give a scan number or a scan db_name")
        if not isinstance(node, ScanNode) or node.type not in keys.SCAN_TYPES:
            raise ManagerError("NotAScan", f"{reference} is a {node.type} node, not a scan")
        return node

    def _publish(self, node: DataNode, number: int) -> None:
        self._redis(lambda: self._context.add_node(node, number))
        self.scan_numbers.append(number)
        self.scan_names.append(node.db_name)
        self._notify("ScanNumbers", "ScanNames", "ScanCount")

    def _add_pending(self, number: int) -> str:
        """Publish scan ``number`` when a watch sees it prepared."""
        self._pending[number] = None
        self._no_pending.clear()
        self._notify("PendingScans")
        return f"pending:{number}"

    def _watch(self, walk: WalkIterator) -> None:
        """Publish pending scans as ``walk`` sees them prepared (in a greenlet of its own)."""

        def follow() -> None:
            try:
                for event in walk:
                    if event.type is EventType.PREPARED_SCAN:
                        self._scan_prepared(event.node)
            except redis.RedisError as error:
                self._lost(error)

        self._watchers.append((walk, gevent.spawn(follow)))

    def _scan_prepared(self, node: DataNode) -> None:
        with self._lock:
            number = node.info.get("scan_nb")
            if self._sequence is None or number not in self._pending:
                return
            del self._pending[number]
            if not self._pending:
                self._no_pending.set()
            self._notify("PendingScans")
            if node.db_name not in self.scan_names:
                self._publish(node, number)


def _number_and_prepared(node: DataNode) -> tuple[int, bool]:
    """A scan's number, and whether it has published PREPARED (Bliss references scans from
    STARTING on): one round trip."""
    with node.connection.pipeline(transaction=False) as pipe:
        pipe.hget(node.db_name + keys.INFO, "scan_nb")
        pipe.xlen(node.db_name + keys.PREPARED)
        raw_number, prepared = pipe.execute()
    if raw_number is None:
        raise ManagerError("NotAScan", f"{node.db_name} has no scan number (info scan_nb)")
    return int(encoding.loads(raw_number)), bool(prepared)
