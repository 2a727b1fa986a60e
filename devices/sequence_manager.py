"""The SequenceManager Tango device: a thin Tango layer over ``tango_groups.manager.Manager``.

Commands map to manager calls; a refused request becomes a ``DevFailed`` whose reason is the
manager's stable ``SequenceManager_*`` reason. The manager reports every change through one
callback, which pushes the change events of the attributes it names (after the Redis write they
describe has committed). All attributes are read-only and pushed by the device (change events,
detect off; channel attributes also push data-ready events); nothing is polled.

Tango state: ON (idle, Redis answers), RUNNING (a sequence is running), FAULT (Redis unreachable,
or invalid properties; the Status says what to do). State and Status push change events too.

Run it the Tango way, ``SequenceManager <instance>`` (``tango_groups.devices.__main__``, which
applies gevent's monkey patching first), or let ``tango-groups serve`` start everything.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import numpy
from tango import AttrDataFormat, AttrWriteType, DevFailed, DevState, DispLevel, Except, GreenMode
from tango.server import Device, attribute, command, device_property, run

from tango_groups.data.connection import connect, redact
from tango_groups.data.streams import BLOCK_MS
from tango_groups.data.writer import Expiration
from tango_groups.manager import ATTRIBUTES, ChannelDecl, Manager, ManagerError, decode_npy
from tango_groups.scanning.scan import ScanState
from tango_groups.session import Session as DataSession

__all__ = ["SequenceManager", "main"]

MAX_SCANS = 1_000_000  # max_dim_x of the scan spectra: far beyond any sequence
MAX_POINTS = 100_000_000  # points of one channel attribute (Tango's limit, not a memory budget)
TANGO_TYPES = {"b": "DevBoolean", "f4": "DevFloat", "f8": "DevDouble", "i1": "DevShort",
               "i2": "DevShort", "i4": "DevLong", "i8": "DevLong64", "u1": "DevUChar",
               "u2": "DevUShort", "u4": "DevULong", "u8": "DevULong64"}


def refusals(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ``ManagerError`` into a DevFailed with its stable reason."""

    @functools.wraps(method)
    def wrapper(self: SequenceManager, *args: Any) -> Any:
        if self.manager is None:
            Except.throw_exception("SequenceManager_NotConfigured", self.get_status(),
                                   f"SequenceManager.{method.__name__}")
        try:
            return method(self, *args)
        except ManagerError as error:
            self.warn_stream(f"{method.__name__} refused: {error.reason}: {error.message}")
            Except.throw_exception(error.reason, error.message,
                                   f"SequenceManager.{method.__name__}")

    return wrapper


def _json_default(value: Any) -> Any:
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        return value.tolist()
    return str(value)


def _tango_type(dtype: numpy.dtype) -> str:
    return TANGO_TYPES["b" if dtype.kind == "b" else f"{dtype.kind}{dtype.itemsize}"]


def pushed(name: str, **kwargs: Any) -> attribute:
    """A read-only attribute showing the manager's value ``name``, pushed by the device with
    change events (detect off: every push is an event)."""
    return attribute(name=name, access=AttrWriteType.READ, change_event_implemented=True,
                     change_event_detect=False, fget=lambda device: device._value(name),
                     fisallowed=lambda device, request: device.manager is not None, **kwargs)


class SequenceManager(Device):
    """Sequences and groups of scans, written to Redis as Bliss 1.x data nodes.

    Start a sequence, add scans by number or db_name (live: a scan added before it runs is
    referenced when it starts), emit points on custom channels, End it. Every Bliss data
    consumer (blissdata 0.3.x, Flint, online analysis) follows the sequence in Redis; Tango
    clients follow the change events of this device.
    """

    green_mode = GreenMode.Gevent

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
        dtype=float, default_value=2.0,
        doc="Seconds End waits for scans added by number that have not started yet. Keep it "
            "below the clients' Tango timeout (3 s by default).")
    DataExpiration = device_property(
        dtype=int, default_value=600,
        doc="Seconds channel data and device nodes live in Redis after their scan ends (0: "
            "forever). Bliss's default is 600.")
    ParentExpiration = device_property(
        dtype=int, default_value=86400,
        doc="Seconds scan nodes and their containers live after the scan ends (0: forever). "
            "Bliss's default is 86400.")
    RedisTimeout = device_property(
        dtype=float, default_value=5.0,
        doc="Seconds a Redis request may take before the device reports FAULT (a Redis that "
            "hangs is as unusable as one that is down).")
    HealthCheckPeriod = device_property(
        dtype=float, default_value=2.0,
        doc="Seconds between two pings of the data Redis (FAULT when it does not answer).")

    manager: Manager | None = None

    # -- init & delete ----------------------------------------------------------------------
    def init_device(self) -> None:
        super().init_device()
        self.set_change_event("State", True, False)
        self.set_change_event("Status", True, False)
        self._channel_attributes: list[str] = []
        self._data_ready: dict[str, int] = {}
        try:
            expiration = Expiration(data=self.DataExpiration or None,
                                    parent=self.ParentExpiration or None)
            timeout = max(self.RedisTimeout, 2 * BLOCK_MS / 1000)  # readers block in XREAD
            client = connect(self.RedisURL, socket_timeout=timeout,
                             socket_connect_timeout=timeout, password=self._redis_password())
            session = DataSession(self.Session, redis_url=self.RedisURL,
                                  base_path=self.BasePath, expiration=expiration, client=client)
        except (OSError, ValueError) as error:
            self.manager = None
            self._set_state(DevState.FAULT, f"Invalid property: {error}. Fix the device "
                                            "properties, then run Init.")
            return
        self.manager = Manager(session, self.RedisURL, end_timeout=self.EndTimeout,
                               on_change=self._on_change,
                               reserved_names=(*ATTRIBUTES, "State", "Status"))
        self.manager.check_connection()
        self._update_state()
        self.manager.start_monitoring(self.HealthCheckPeriod)
        self.info_stream(f"session {self.Session!r} in {redact(self.RedisURL)}, "
                         f"scans in {self.BasePath}")

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
            self.manager.close()
            self.manager.session.close()
            self.manager = None
        self._remove_channel_attributes()

    # -- state --------------------------------------------------------------------------------
    def _set_state(self, state: DevState, status: str) -> None:
        if state != self.get_state():
            log = self.error_stream if state == DevState.FAULT else self.info_stream
            log(f"{state}: {status}")
        self.set_state(state)
        self.set_status(status)
        self.push_change_event("State")
        self.push_change_event("Status")

    def _update_state(self) -> None:
        manager = self.manager
        if not manager.connected:
            self._set_state(DevState.FAULT, manager.connection_error)
        elif manager.running:
            self._set_state(DevState.RUNNING, f"Running sequence {manager.sequence_name}: add "
                                              "scans, emit channel points, then End or Abort it.")
        else:
            last = (f" Last sequence: {manager.sequence_name} ({manager.state.name})."
                    if manager.sequence_name else "")
            self._set_state(DevState.ON, f"Idle: Start a sequence in session "
                                         f"{self.Session!r} ({manager.redis_url}).{last}")

    # -- manager callback -> events -----------------------------------------------------------
    def _on_change(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name == "State":
                self._update_state()
            elif name.startswith("channel:"):
                channel = name.partition(":")[2]
                if channel in self._channel_attributes:
                    self.push_change_event(channel, self._channel_value(channel))
                    self._data_ready[channel] += 1
                    self.push_data_ready_event(channel, self._data_ready[channel])
            else:
                self.push_change_event(name, self._value(name))

    def _value(self, name: str) -> Any:
        manager = self.manager
        return {
            "SequenceName": lambda: manager.sequence_name,
            "SequenceNumber": lambda: manager.sequence_number,
            "Title": lambda: manager.title,
            "SequenceState": lambda: manager.state,
            "ScanNumbers": lambda: numpy.array(manager.scan_numbers, dtype=numpy.int64),
            "ScanNames": lambda: list(manager.scan_names),
            "ScanCount": lambda: len(manager.scan_numbers),
            "PendingScans": lambda: numpy.array(manager.pending, dtype=numpy.int64),
            "ChannelNames": lambda: list(manager.channels),
            "ScanInfo": lambda: json.dumps(manager.scan_info, default=_json_default),
        }[name]()

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

    # -- one attribute per custom channel -----------------------------------------------------
    def _channel_value(self, name: str) -> numpy.ndarray:
        points = self.manager.points(name)
        return points if points.ndim <= 2 else points.reshape(len(points), -1)

    def read_channel(self, attr: Any) -> None:
        attr.set_value(self._channel_value(attr.get_name()))

    def _add_channel_attribute(self, decl: ChannelDecl) -> None:
        image = bool(decl.shape)
        width = int(numpy.prod(decl.shape)) if image else MAX_POINTS
        shape = f" of points {list(decl.shape)} (one row per point)" if image else ""
        self.add_attribute(attribute(
            name=decl.name, dtype=_tango_type(decl.dtype),
            dformat=AttrDataFormat.IMAGE if image else AttrDataFormat.SPECTRUM,
            max_dim_x=width, max_dim_y=MAX_POINTS // width if image else 0,
            access=AttrWriteType.READ, unit=decl.unit or "", label=decl.name,
            doc=f"Custom channel {decl.name} ({decl.dtype.name}{shape}): the points emitted in "
                "the current (or last) sequence",
            fget=self.read_channel))
        # the attribute() flags are not applied to dynamic attributes: declare the events here
        self.set_change_event(decl.name, True, False)
        self.set_data_ready_event(decl.name, True)
        self._channel_attributes.append(decl.name)
        self._data_ready[decl.name] = 0

    def _remove_channel_attributes(self) -> None:
        for name in self._channel_attributes:
            self.remove_attribute(name)
        self._channel_attributes = []
        self._data_ready = {}

    # -- commands -----------------------------------------------------------------------------
    @command(dtype_in=str, dtype_out=str,
             doc_in='Empty, a title, or JSON {"title": str, "scan_info": {...}, "channels": '
                    '[{"name": str, "dtype": "float64", "shape": [], "unit": str}]}',
             doc_out="db_name of the new sequence (scan_group node)")
    @refusals
    def Start(self, request: str) -> str:
        """Start a sequence; refused while one runs."""
        db_name = self.manager.start(request)
        self._remove_channel_attributes()
        for decl in self.manager.channels.values():
            self._add_channel_attribute(decl)
        return db_name

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


def main(args: list[str] | None = None) -> int:
    """``SequenceManager <instance>``: run the server (gevent must be patched already)."""
    try:
        run((SequenceManager,), args=args)
    except DevFailed as error:
        print(error.args[0].desc)
        return 1
    return 0
