"""The SequenceManager Tango device: a thin Tango layer over ``tango_groups.service``.

Commands map to manager calls; a refused request becomes a ``DevFailed`` whose reason is the
manager's stable ``SequenceManager_*`` reason (anything unforeseen is
``SequenceManager_InternalError``, logged with its traceback: a client never sees a bare Python
error). All attributes are read-only and pushed by the device (change events, detect off; channel
attributes also push data-ready events); nothing is polled.

Threads and locks: the device runs in Tango's synchronous mode, where the device monitor
serialises commands, attribute reads and the subscriptions' first reads. The manager reports
every change as a typed notification that carries the new values
(``tango_groups.service.notifications``), from command threads and from its own threads
(pending-scan followers, health check). The device keeps those values (attribute reads, State
and Status return them: a client sees what a command left without waiting for the events) and
queues the pushes *at once*, so events come in the order of the changes; one dispatcher thread
pushes them while holding the device monitor, so no push ever races a read of the same attribute
inside libtango (the cause of the segfaults of the gevent version, which runs without the
monitor). The device never asks the manager for a value.

Tango state: ON (idle, Redis answers), RUNNING (a sequence is running), FAULT (Redis unreachable,
the running sequence lost by Redis, or invalid properties; the Status says what to do).

Run it the Tango way, ``SequenceManager <instance>`` (``tango_groups.devices.__main__``), or let
``tango-groups serve`` start everything.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy
from tango import (
    AttrDataFormat,
    AttrWriteType,
    AutoTangoMonitor,
    DevFailed,
    DevState,
    DispLevel,
    Except,
    Util,
)
from tango.server import Device, attribute, command, device_property, run

import tango_groups.session
from tango_groups.data.channel import ChannelSpec
from tango_groups.data.connection import connect, redact
from tango_groups.data.streams import BLOCK_MS
from tango_groups.data.writer import Expiration
from tango_groups.scanning.scan import ScanState
from tango_groups.service.manager import RECOVERY_MODES, Manager
from tango_groups.service.notifications import (
    Notification,
    PendingChanged,
    PointsWritten,
    ScansChanged,
    SequenceEnded,
    SequenceStarted,
    StateChanged,
)
from tango_groups.service.requests import (
    ManagerError,
    decode_npy,
    parse_channels,
    parse_start_request,
)
from tango_groups.service.states import Phase, tango_state

__all__ = ["SequenceManager", "main"]

logger = logging.getLogger(__name__)

MAX_SCANS = 1_000_000  # max_dim_x of the scan spectra: far beyond any sequence
MAX_POINTS = 100_000_000  # points of one channel attribute (Tango's limit, not a memory budget)
MAX_REDIS_TIMEOUT = 2.5  # s: below the 3 s Tango client timeout, so a client gets our answer
TANGO_TYPES = {"b": "DevBoolean", "f4": "DevFloat", "f8": "DevDouble", "i1": "DevShort",
               "i2": "DevShort", "i4": "DevLong", "i8": "DevLong64", "u1": "DevUChar",
               "u2": "DevUShort", "u4": "DevULong", "u8": "DevULong64"}


def refusals(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ``ManagerError`` into a DevFailed with its stable reason, anything else into
    ``SequenceManager_InternalError`` (with the traceback in the log)."""

    @functools.wraps(method)
    def wrapper(self: SequenceManager, *args: Any) -> Any:
        where = f"SequenceManager.{method.__name__}"
        if self.manager is None:
            Except.throw_exception("SequenceManager_NotConfigured", self.dev_status(), where)
        try:
            return method(self, *args)
        except ManagerError as error:
            self.warn_stream(f"{method.__name__} refused: {error.reason}: {error.message}")
            Except.throw_exception(error.reason, error.message, where)
        except DevFailed:
            raise
        except Exception as error:
            logger.exception("%s failed", method.__name__)
            self.error_stream(f"{method.__name__} failed: {type(error).__name__}: {error}")
            Except.throw_exception("SequenceManager_InternalError",
                                   f"{type(error).__name__}: {error} (a bug: please report it "
                                   "with the server log)", where)

    return wrapper


def _json_default(value: Any) -> Any:
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        return value.tolist()
    return str(value)


def _tango_type(dtype: Any) -> str:
    dtype = numpy.dtype(dtype)
    return TANGO_TYPES["b" if dtype.kind == "b" else f"{dtype.kind}{dtype.itemsize}"]


def _same_channel(declared: ChannelSpec | None, shown: ChannelSpec) -> bool:
    """Whether a sequence's channel is the one an attribute shows (dtype, shape and unit)."""
    return declared is not None and (numpy.dtype(declared.dtype), declared.shape,
                                     declared.unit) == (numpy.dtype(shown.dtype), shown.shape,
                                                        shown.unit)


def pushed(name: str, **kwargs: Any) -> attribute:
    """A read-only attribute showing the value ``name`` the manager notified last, pushed by the
    device with change events (detect off: every push is an event)."""
    return attribute(name=name, access=AttrWriteType.READ, change_event_implemented=True,
                     change_event_detect=False, fget=lambda device: device._values[name],
                     fisallowed=lambda device, request: device.manager is not None, **kwargs)


class Pushes:
    """Values to push, in the order they were queued, from one thread that holds the device
    monitor while it pushes. ``close`` stops it: queued values are dropped, and with ``wait`` the
    thread has ended when it returns (the device may be destroyed then)."""

    def __init__(self, device: Device, push: Callable[[str, Any], None]) -> None:
        self._queue: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self._open = True
        self._thread = threading.Thread(target=self._run, args=(device, push),
                                        name="SequenceManager-events", daemon=True)
        self._thread.start()
        self._device = device

    def put(self, name: str, value: Any) -> None:
        self._queue.put((name, value))

    def _run(self, device: Device, push: Callable[[str, Any], None]) -> None:
        while (item := self._queue.get()) is not None:
            # nothing to push before the server is up (no client can have subscribed), and
            # pushing while cppTango initialises the server can deadlock with it
            if not self._open or Util.instance().is_svr_starting():
                continue
            with AutoTangoMonitor(device):
                if self._open:
                    try:
                        push(*item)
                    except DevFailed as error:  # e.g. an attribute removed meanwhile
                        logger.debug("push of %s skipped: %s", item[0], error.args[0].desc)

    def close(self, wait: bool) -> None:
        with AutoTangoMonitor(self._device):  # no push is under way once we hold it
            self._open = False
        self._queue.put(None)
        if wait:
            self._thread.join()


class SequenceManager(Device):
    """Sequences and groups of scans, written to Redis as Bliss 1.x data nodes.

    Start a sequence, add scans by number or db_name (live: a scan added before it runs is
    referenced when it starts), emit points on custom channels, End it. Every Bliss data
    consumer (blissdata 0.3.x, Flint, online analysis) follows the sequence in Redis; Tango
    clients follow the change events of this device.
    """

    # -- device properties ------------------------------------------------------------------
    RedisURL = device_property(
        dtype=str, default_value="redis://127.0.0.1:6379",
        doc="Data Redis, redis://[:password@]host:port[/db]. Data nodes go to logical db 1 unless "
            "the URL names a db (Bliss's data Redis: the Beacon host, port 25002).")
    RedisPasswordFile = device_property(
        dtype=str, default_value="",
        doc="File whose first line is the Redis password, readable by the server's user only: "
            "keeps the password out of the Tango database. Used when RedisURL names none.")
    Session = device_property(
        dtype=str, default_value="tango_groups",
        doc="Session name: the root node of everything this device writes (no ':').")
    BasePath = device_property(
        dtype=str, default_value="/tmp/scans",
        doc="Scan-saving path; its directories become containers below the session, as in Bliss "
            "(/tmp/scans -> <session>:tmp:scans). Scan numbers are counted in that container.")
    EndTimeout = device_property(
        dtype=float, default_value=1.5,
        doc="Seconds End waits for scans added by number that have not started yet. End takes "
            "up to EndTimeout + RedisTimeout: keep that below the clients' Tango timeout (3 s).")
    DataExpiration = device_property(
        dtype=int, default_value=600,
        doc="Seconds channel data and device nodes live in Redis after their scan ends (0: "
            "forever). Bliss's default is 600.")
    ParentExpiration = device_property(
        dtype=int, default_value=86400,
        doc="Seconds scan nodes and their containers live after the scan ends (0: forever). "
            "Bliss's default is 86400.")
    RedisTimeout = device_property(
        dtype=float, default_value=1.0,
        doc=f"Seconds a Redis request may take before the command fails with "
            f"SequenceManager_RedisUnavailable and the device reports FAULT (at most "
            f"{MAX_REDIS_TIMEOUT}: a client must get the device's answer before its own 3 s "
            "timeout).")
    HealthCheckPeriod = device_property(
        dtype=float, default_value=1.0,
        doc="Seconds between two checks of the data Redis (FAULT when it does not answer, or "
            "when it lost the running sequence). While it fails, commands are refused at once "
            "and the device recovers within this period once it answers.")
    Channels = device_property(
        dtype=(str,), default_value=["sum"],
        doc="Custom channels that get a Tango attribute of their own, one per line: a name "
            "(float64 points) or a JSON object as in Start ({\"name\", \"dtype\", \"shape\", "
            "\"unit\"}). The attributes are created when the server starts (cppTango does not "
            "protect attributes added later against clients reading configurations): a change "
            "takes effect at the next server start. Start may use other channels too: they "
            "are written to Redis, without a Tango attribute.")
    RecoveryMode = device_property(
        dtype=str, default_value="close",
        doc="What the device does at start-up with a sequence a previous run left open (a "
            "crash, a kill): 'close' ends it as KILLED, 'resume' takes it over (RUNNING).")

    manager: Manager | None = None

    # -- init & delete ----------------------------------------------------------------------
    def init_device(self) -> None:
        super().init_device()
        self.set_change_event("State", True, False)
        self.set_change_event("Status", True, False)
        self._invalid = self._restart_note = ""
        self._values: dict[str, Any] = {}
        self._pushes = Pushes(self, self._push)
        try:
            self._create_channel_attributes(parse_channels(list(self.Channels), RESERVED_NAMES))
            manager = self._create_manager()
        except (ManagerError, OSError, ValueError) as error:
            self._create_channel_attributes({})  # none until the server restarts
            self.manager = None
            self._invalid = (f"Invalid property: {getattr(error, 'message', error)}. Fix the "
                             "device properties, then run Init.")
            self.error_stream(self._invalid)
            self._on_change(StateChanged(Phase.IDLE, False, self._invalid))
            return
        self._sequence_values(SequenceStarted("", 0, "", ScanState.IDLE, (), {}))
        self.manager = manager
        manager.open(self.HealthCheckPeriod)  # may close or resume what a run left open
        self.info_stream(f"session {self.Session!r} in {redact(self.RedisURL)}, "
                         f"scans in {self.BasePath}: {self.dev_status()}")

    def _create_manager(self) -> Manager:
        if not 0 < self.RedisTimeout <= MAX_REDIS_TIMEOUT:
            raise ValueError(f"RedisTimeout {self.RedisTimeout} s: use a value in "
                             f"(0, {MAX_REDIS_TIMEOUT}]")
        if self.RecoveryMode not in RECOVERY_MODES:
            raise ValueError(f"RecoveryMode {self.RecoveryMode!r}: use one of "
                             f"{', '.join(RECOVERY_MODES)}")
        expiration = Expiration(data=self.DataExpiration or None,
                                parent=self.ParentExpiration or None)
        password = self._redis_password()
        client = connect(self.RedisURL, socket_timeout=self.RedisTimeout,
                         socket_connect_timeout=self.RedisTimeout, password=password)
        # the followers block in XREAD for up to BLOCK_MS: their socket timeout must cover it
        follow = BLOCK_MS / 1000 + self.RedisTimeout
        watch_client = connect(self.RedisURL, socket_timeout=follow,
                               socket_connect_timeout=self.RedisTimeout, password=password)
        session = tango_groups.session.Session(self.Session, redis_url=self.RedisURL, base_path=self.BasePath,
                              expiration=expiration, client=client)
        self._watch_client = watch_client
        return Manager(session, self.RedisURL, owner=self.get_name(),
                       watch_client=watch_client, end_timeout=self.EndTimeout,
                       recovery=self.RecoveryMode, on_change=self._on_change)

    def _redis_password(self) -> str | None:
        if not self.RedisPasswordFile:
            return None
        try:
            with open(self.RedisPasswordFile, encoding="utf-8") as secret:
                return secret.readline().rstrip("\r\n")
        except OSError as error:
            raise OSError(f"RedisPasswordFile {self.RedisPasswordFile!r} cannot be read "
                          f"({error.strerror})") from None

    def delete_device(self) -> None:
        if self.manager is not None:
            try:
                self.manager.close()
            finally:
                self.manager.session.close()
                self._watch_client.close()
                self.manager = None
        # at shutdown the device is destroyed next: wait until nothing pushes any more (Init
        # holds the monitor and keeps the device: the closed dispatcher just drains)
        self._pushes.close(wait=Util.instance().is_svr_shutting_down())

    # -- state --------------------------------------------------------------------------------
    def dev_state(self) -> DevState:
        phase, connected, _ = self._values["State"]
        return DevState.names[tango_state(phase, connected)]

    def dev_status(self) -> str:
        return self._values["State"][2] + ("" if self.manager is None else self._restart_note)

    # -- notifications -> kept values and queued pushes -> dispatcher thread ------------------
    def _on_change(self, notification: Notification) -> None:
        """Called with the manager's (or its sequence's) lock held: keep the values, queue the
        pushes (in order), never call back."""
        match notification:
            case StateChanged(phase, connected, _):
                self._values["State"] = (phase, connected, notification.status)
                self._pushes.put("State", (self.dev_state(), self.dev_status()))
            case SequenceStarted():
                self._sequence_values(notification)
            case SequenceEnded(state, scan_info):
                self._set("SequenceState", state)
                self._set("ScanInfo", json.dumps(scan_info, default=_json_default))
            case ScansChanged(numbers, names):
                self._set("ScanNumbers", numpy.array(numbers, dtype=numpy.int64))
                self._set("ScanNames", list(names))
                self._set("ScanCount", len(numbers))
            case PendingChanged(numbers):
                self._set("PendingScans", numpy.array(numbers, dtype=numpy.int64))
            case PointsWritten(channel, block):
                if channel in self._shown:
                    self._points[channel].append(block)
                    self._pushes.put(channel, self._channel_value(channel))

    def _set(self, name: str, value: Any) -> None:
        self._values[name] = value
        self._pushes.put(name, value)

    def _sequence_values(self, started: SequenceStarted) -> None:
        """A new sequence: its values, no scans, no pending numbers, empty channels."""
        self._set("SequenceName", started.name)
        self._set("SequenceNumber", started.number)
        self._set("Title", started.title)
        self._set("SequenceState", started.state)
        self._set("ChannelNames", [spec.name for spec in started.channels])
        self._set("ScanInfo", json.dumps(started.scan_info, default=_json_default))
        self._on_change(ScansChanged((), ()))
        self._on_change(PendingChanged(()))
        # a channel attribute shows the sequence's points when it declares that channel alike
        declared = {spec.name: spec for spec in started.channels}
        self._shown = {name for name, spec in self._channel_attributes.items()
                       if _same_channel(declared.get(name), spec)}
        self._points: dict[str, list[numpy.ndarray]] = {name: [] for name in self._shown}
        for name in self._channel_attributes:
            self._pushes.put(name, self._channel_value(name))

    def _push(self, name: str, value: Any) -> None:
        """Push one queued value (in the dispatcher thread, holding the device monitor)."""
        if name == "State":
            state, status = value
            if state != self.get_state():
                log = self.error_stream if state == DevState.FAULT else self.info_stream
                log(f"{state}: {status}")
            self.set_state(state)
            self.set_status(status)
            self.push_change_event("State")
            self.push_change_event("Status")
        elif name in self._channel_attributes:
            self.push_change_event(name, value)
            if len(value):  # new points (not the reset of a new sequence)
                self._data_ready[name] += 1
                self.push_data_ready_event(name, self._data_ready[name])
        else:
            self.push_change_event(name, value)

    # -- attributes ---------------------------------------------------------------------------
    SequenceName = pushed(
        "SequenceName", dtype=str, label="Sequence",
        doc="db_name of the current (or last) sequence; empty before the first")
    SequenceNumber = pushed(
        "SequenceNumber", dtype=numpy.int64, label="Sequence number", format="%d",
        doc="Scan number of the sequence (its scan_group node)")
    Title = pushed(
        "Title", dtype=str, label="Title", doc="Title of the current (or last) sequence")
    SequenceState = pushed(
        "SequenceState", dtype=ScanState, label="Sequence state",
        doc="Bliss scan state of the sequence: IDLE before the first, STARTING while it runs, "
            "then DONE, USER_ABORTED or KILLED")
    ScanNumbers = pushed(
        "ScanNumbers", dtype=(numpy.int64,), max_dim_x=MAX_SCANS, label="Scan numbers",
        format="%d", doc="Numbers of the scans referenced so far, in order")
    ScanNames = pushed(
        "ScanNames", dtype=(str,), max_dim_x=MAX_SCANS, label="Scans",
        doc="db_names of the scans referenced so far, in order")
    ScanCount = pushed(
        "ScanCount", dtype=numpy.int64, label="Scan count", format="%d",
        doc="How many scans the sequence references")
    PendingScans = pushed(
        "PendingScans", dtype=(numpy.int64,), max_dim_x=MAX_SCANS, label="Pending scans",
        format="%d", doc="Scan numbers added before they started; referenced when they do")
    ChannelNames = pushed(
        "ChannelNames", dtype=(str,), max_dim_x=1024, label="Custom channels",
        doc="Custom channels of the sequence; each is also an attribute")
    ScanInfo = pushed(
        "ScanInfo", dtype=str, label="Scan info", display_level=DispLevel.EXPERT,
        doc="scan_info of the sequence as JSON (as stored in Redis)")

    # -- one attribute per declared channel ---------------------------------------------------
    def _channel_value(self, name: str) -> numpy.ndarray:
        """The points of channel ``name`` in the current (or last) sequence; none when it has
        no such channel (or one of another dtype or shape)."""
        spec = self._channel_attributes[name]
        blocks = self._points.get(name)
        if not blocks:
            points = numpy.empty((0,) + spec.shape, dtype=spec.dtype)
        else:
            if len(blocks) > 1:
                blocks[:] = [numpy.concatenate(blocks)]
            points = blocks[0]
        # an image attribute holds one point per row (points of [n, m] are flattened)
        return points if points.ndim <= 2 else points.reshape(len(points), -1 if len(points)
                                                               else math.prod(spec.shape))

    def read_channel(self, attr: Any) -> None:
        attr.set_value(self._channel_value(attr.get_name()))

    def _create_channel_attributes(self, decls: dict[str, ChannelSpec]) -> None:
        """One attribute per declared channel, with change and data-ready events. Only at the
        server's start: attributes are never added or removed while clients may ask for their
        configuration (an ``Init`` with other ``Channels`` asks for a restart in the Status)."""
        if hasattr(self, "_channel_attributes"):
            if decls != self._channel_attributes:
                self._restart_note = (" The Channels property changed: restart the server to "
                                      "create the new channel attributes.")
            return
        self._channel_attributes: dict[str, ChannelSpec] = {}
        self._data_ready: dict[str, int] = {}
        for decl in decls.values():
            self._add_channel_attribute(decl)

    def _add_channel_attribute(self, decl: ChannelSpec) -> None:
        image = bool(decl.shape)
        width = int(numpy.prod(decl.shape)) if image else MAX_POINTS
        shape = f" of points {list(decl.shape)} (one row per point)" if image else ""
        self.add_attribute(attribute(
            name=decl.name, dtype=_tango_type(decl.dtype),
            dformat=AttrDataFormat.IMAGE if image else AttrDataFormat.SPECTRUM,
            max_dim_x=width, max_dim_y=max(MAX_POINTS // width, 1) if image else 0,
            access=AttrWriteType.READ, unit=decl.unit or "", label=decl.name,
            doc=f"Custom channel {decl.name} ({numpy.dtype(decl.dtype).name}{shape}): the points emitted "
                "in the current (or last) sequence",
            fget=self.read_channel))
        # the attribute() flags are not applied to dynamic attributes: declare the events here
        self.set_change_event(decl.name, True, False)
        self.set_data_ready_event(decl.name, True)
        self._channel_attributes[decl.name] = decl
        self._data_ready[decl.name] = 0

    # -- commands -----------------------------------------------------------------------------
    @command(dtype_in=str, dtype_out=str,
             doc_in='Empty, a title, or JSON {"title": str, "scan_info": {...}, "channels": '
                    '[{"name": str, "dtype": "float64", "shape": [], "unit": str}]}',
             doc_out="db_name of the new sequence (scan_group node)")
    @refusals
    def Start(self, request: str) -> str:
        """Start a sequence; refused while one runs. Nothing is written when it is refused."""
        return self.manager.start(
            parse_start_request(request, RESERVED_NAMES, self._channel_attributes))

    @command(dtype_in=str, dtype_out=str,
             doc_in="A scan number (of the BasePath container) or a scan db_name",
             doc_out="db_name of the referenced scan, or 'pending:<number>' for a scan that has "
                     "not started yet (referenced as soon as it does)")
    @refusals
    def AddScan(self, reference: str) -> str:
        """Reference a scan in the running sequence."""
        return self.manager.add_scan(reference)

    @command(dtype_in="DevVarDoubleStringArray", dtype_out=int,
             doc_in="([points...], [channel name]); points are flattened for channels whose "
                    "points are arrays",
             doc_out="Number of points written")
    @refusals
    def EmitChannel(self, argin: tuple[numpy.ndarray, list[str]]) -> int:
        """Append points to a custom channel (converted to its dtype without loss, or refused)."""
        values, names = argin
        if len(names) != 1:
            raise ManagerError("BadRequest", "give exactly one channel name in the string part")
        return self.manager.emit(names[0], numpy.asarray(values), flat=True)

    @command(dtype_in="DevEncoded", dtype_out=int,
             doc_in="(channel name, .npy bytes as numpy.save writes them): one point or a block "
                    "of points of any declared dtype and shape",
             doc_out="Number of points written")
    @refusals
    def EmitChannelEncoded(self, argin: tuple[str, bytes]) -> int:
        """Append points to a custom channel without going through doubles."""
        name, payload = argin
        return self.manager.emit(name, decode_npy(bytes(payload)))

    @command(dtype_out=str, doc_out="Final state of the sequence (DONE, KILLED, USER_ABORTED)")
    @refusals
    def End(self) -> str:
        """End the sequence; fails (after ending it) if scans added by number never started."""
        return self.manager.end()

    @command(dtype_out=str, doc_out="USER_ABORTED")
    @refusals
    def Abort(self) -> str:
        """End the sequence as USER_ABORTED without waiting for pending scans."""
        return self.manager.abort()

    @command(dtype_in=str, dtype_out=str,
             doc_in='Scans as JSON {"scans": [12, "<db_name>"], "title": str, "scan_info": {}} '
                    "or a list of numbers / db_names ('12 13 14')",
             doc_out="db_name of the new group")
    @refusals
    def CreateGroup(self, request: str) -> str:
        """Group existing scans in one call (independent of the running sequence)."""
        return self.manager.create_group(request)


ATTRIBUTES = ("SequenceName", "SequenceNumber", "Title", "SequenceState", "ScanNumbers",
              "ScanNames", "ScanCount", "PendingScans", "ChannelNames", "ScanInfo")
RESERVED_NAMES = frozenset(name.lower() for name in (*ATTRIBUTES, "State", "Status"))


def main(args: list[str] | None = None) -> int:
    """``SequenceManager <instance>``: run the server."""
    try:
        run((SequenceManager,), args=args)
    except DevFailed as error:
        print(error.args[0].desc)
        return 1
    return 0
