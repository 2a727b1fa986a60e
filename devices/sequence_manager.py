"""The SequenceManager Tango device: a thin Tango layer over ``tango_groups.service``.

Commands map to calls of a ``SequenceService`` (``configuration`` builds it from the
properties); a refused request becomes a ``DevFailed`` with a stable ``SequenceManager_*`` reason
(``refusals``). All attributes (named in ``interface``) are read-only and pushed (change events,
detect off; channel attributes, ``channels``, also data-ready events); nothing is polled.

Threads and locks: the device runs in Tango's synchronous mode, where the device monitor
serialises commands, attribute reads and the subscriptions' first reads. The service reports
every change as a typed notification that carries the new values
(``tango_groups.service.notifications``), from command threads and from its own threads
(pending-scan followers, health check). The device keeps those values (attribute reads, State
and Status return them: a client sees what a command left without waiting for the events) and
queues the pushes *at once*, so events come in the order of the changes; one dispatcher thread
(``pushes``) pushes them while holding the device monitor. The device never asks the service for
a value.

Tango state: ON (idle), RUNNING (a sequence runs), FAULT (Redis unreachable, the sequence lost,
the lease another server's, or invalid properties; the Status says what to do). Run it as
``SequenceManager <instance>`` (``tango_groups.devices.__main__``) or through
``tango-groups serve``.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import signal
from typing import Any

import numpy
from tango import DevState, DispLevel, Util
from tango.server import command

from tango_groups.data.channel import ChannelSpec
from tango_groups.data.connection import redact
from tango_groups.devices.attributes import MAX_SCANS, json_value, push_change, pushed
from tango_groups.devices.channels import PointWindow, channel_attribute, same_channel
from tango_groups.devices.configuration import create_service
from tango_groups.devices.interface import RESERVED_NAMES, Attribute
from tango_groups.devices.properties import SequenceManagerProperties
from tango_groups.devices.pushes import Pushes
from tango_groups.devices.refusals import refusals
from tango_groups.devices.scan_list import ScanList
from tango_groups.devices.state import tango_state
from tango_groups.scanning.scan import ScanState
from tango_groups.service.notifications import (
    Notification,
    PendingChanged,
    PointsWritten,
    ScansAdded,
    SequenceEnded,
    SequenceStarted,
    StateChanged,
)
from tango_groups.service.protocol import SequenceService
from tango_groups.service.reasons import ManagerError, Reason
from tango_groups.service.requests import decode_npy, parse_channels, parse_start_request
from tango_groups.service.states import Phase

__all__ = ["SequenceManager"]

logger = logging.getLogger(__name__)

class SequenceManager(SequenceManagerProperties):
    """Sequences and groups of scans, written to Redis as Bliss 1.x data nodes or Bliss 2 scans
    (``DataFormat``; the properties are declared in ``properties``).

    Start a sequence, add scans by number or db_name (live: a scan added before it runs is
    referenced when it starts), emit points on custom channels, End it. Every Bliss data
    consumer (blissdata 0.3.x, Flint, online analysis) follows the sequence in Redis; Tango
    clients follow the change events of this device.
    """

    service: SequenceService | None = None

    # -- init & delete ----------------------------------------------------------------------
    def init_device(self) -> None:
        super().init_device()
        # ``kill -USR1 <pid>``: the stack of every thread to stderr (what a server that stopped
        # answering waits for), and the server goes on
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        self.set_change_event("State", True, False)
        self.set_change_event("Status", True, False)
        self._invalid = self._restart_note = ""
        self._values: dict[str, Any] = {}
        self._pushes = Pushes(self, self._push)
        try:
            self._create_channel_attributes(parse_channels(list(self.Channels), RESERVED_NAMES))
            service = create_service(self, self._on_change)
        except (ManagerError, OSError, ValueError) as error:
            self._create_channel_attributes({})  # none until the server restarts
            self.service = None
            self._invalid = (f"Invalid property: {getattr(error, 'message', error)}. Fix the "
                             "device properties, then run Init.")
            self.error_stream(self._invalid)
            self._on_change(StateChanged(Phase.IDLE, False, self._invalid))
            return
        self._sequence_values(SequenceStarted("", 0, "", ScanState.IDLE, (), {}))
        self.service = service
        service.open(self.HealthCheckPeriod)  # may close or resume what a run left open
        self.info_stream(f"session {self.Session!r} in {redact(self.RedisURL)}, "
                         f"scans in {self.BasePath}: {self.dev_status()}")

    def delete_device(self) -> None:
        if self.service is not None:
            running = self.get_state() == DevState.RUNNING
            try:
                self.service.close()  # ends a running sequence KILLED: say so in the log
                if running:
                    logger.warning("sequence %s ended %s: the device stops",
                                   self._values[Attribute.SEQUENCE_NAME],
                                   ScanState(self._values[Attribute.SEQUENCE_STATE]).name)
            finally:
                self.service.release()
                self.service = None
        # at shutdown the device is destroyed next: wait until nothing pushes any more (Init
        # holds the monitor and keeps the device: the closed dispatcher just drains)
        self._pushes.close(wait=Util.instance().is_svr_shutting_down())

    # -- state --------------------------------------------------------------------------------
    def dev_state(self) -> DevState:
        phase, connected, _ = self._values["State"]
        return tango_state(phase, connected)

    def dev_status(self) -> str:
        return self._values["State"][2] + ("" if self.service is None else self._restart_note)

    # -- notifications -> kept values and queued pushes -> dispatcher thread ------------------
    def _on_change(self, notification: Notification) -> None:
        """Called with the service's (or its sequence's) lock held: keep the values, queue the
        pushes (in order), never call back."""
        match notification:
            case StateChanged(phase, connected, _):
                self._values["State"] = (phase, connected, notification.status)
                self._pushes.put("State", (self.dev_state(), self.dev_status()))
            case SequenceStarted():
                self._sequence_values(notification)
            case SequenceEnded(state, scan_info):
                self._set(Attribute.SEQUENCE_STATE, state)
                self._set(Attribute.SCAN_INFO, json.dumps(scan_info, default=json_value))
            case ScansAdded(numbers, names):  # the scalar first: its event is the cheapest
                self._scans.extend(numbers, names)
                self._set(Attribute.SCAN_COUNT, len(self._scans))
                self._set(Attribute.SCAN_NUMBERS, self._scans.numbers())
                self._set(Attribute.SCAN_NAMES, self._scans.names())
            case PendingChanged(numbers):
                self._set(Attribute.PENDING_SCANS, numpy.array(numbers, dtype=numpy.int64))
            case PointsWritten(channel, block):
                if channel in self._shown:
                    self._windows[channel].append(block)
                    self._pushes.put(channel, self._windows[channel].value())

    def _set(self, name: str, value: Any) -> None:
        self._values[name] = value
        self._pushes.put(name, value)

    def _sequence_values(self, started: SequenceStarted) -> None:
        """A new sequence: its values, no scans, no pending numbers, empty channels."""
        self._set(Attribute.SEQUENCE_NAME, started.name)
        self._set(Attribute.SEQUENCE_NUMBER, started.number)
        self._set(Attribute.TITLE, started.title)
        self._set(Attribute.SEQUENCE_STATE, started.state)
        self._set(Attribute.CHANNEL_NAMES, [spec.name for spec in started.channels])
        self._set(Attribute.SCAN_KEY, started.key)
        self._set(Attribute.SCAN_INFO, json.dumps(started.scan_info, default=json_value))
        self._scans = ScanList()
        self._on_change(ScansAdded((), ()))
        self._on_change(PendingChanged(()))
        # a channel attribute shows the sequence's points when it declares that channel alike
        declared = {spec.name: spec for spec in started.channels}
        self._shown = {name for name, spec in self._channel_attributes.items()
                       if same_channel(declared.get(name), spec)}
        for name, window in self._windows.items():
            window.clear()
            self._pushes.put(name, window.value())

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
        else:
            push_change(self, name, value)
            if name in self._channel_attributes and len(value):  # new points, not a reset
                self._data_ready[name] += 1
                self.push_data_ready_event(name, self._data_ready[name])

    # -- attributes ---------------------------------------------------------------------------
    SequenceName = pushed(
        Attribute.SEQUENCE_NAME, dtype=str, label="Sequence",
        doc="db_name of the current (or last) sequence (its esrf:scan: key in DataFormat "
            "bliss2); empty before the first")
    SequenceNumber = pushed(
        Attribute.SEQUENCE_NUMBER, dtype=numpy.int64, label="Sequence number", format="%d",
        doc="Scan number of the sequence (its scan_group node)")
    Title = pushed(
        Attribute.TITLE, dtype=str, label="Title", doc="Title of the current (or last) sequence")
    SequenceState = pushed(
        Attribute.SEQUENCE_STATE, dtype=ScanState, label="Sequence state",
        doc="Bliss scan state of the sequence: IDLE before the first, STARTING while it runs, "
            "then DONE, USER_ABORTED or KILLED")
    ScanNumbers = pushed(
        Attribute.SCAN_NUMBERS, dtype=(numpy.int64,), max_dim_x=MAX_SCANS, label="Scan numbers",
        format="%d", doc="Numbers of the scans referenced so far, in order")
    ScanNames = pushed(
        Attribute.SCAN_NAMES, dtype=(str,), max_dim_x=MAX_SCANS, label="Scans",
        doc="db_names (Bliss 2 keys in DataFormat bliss2) of the scans referenced so far, in "
            "order")
    ScanCount = pushed(
        Attribute.SCAN_COUNT, dtype=numpy.int64, label="Scan count", format="%d",
        doc="How many scans the sequence references")
    PendingScans = pushed(
        Attribute.PENDING_SCANS, dtype=(numpy.int64,), max_dim_x=MAX_SCANS, label="Pending scans",
        format="%d", doc="Scan numbers added before they started; referenced when they do")
    ChannelNames = pushed(
        Attribute.CHANNEL_NAMES, dtype=(str,), max_dim_x=1024, label="Custom channels",
        doc="Custom channels of the sequence; each is also an attribute")
    ScanKey = pushed(
        Attribute.SCAN_KEY, dtype=str, label="Scan key",
        doc="Bliss 2 key (esrf:scan:...) of the current (or last) sequence; empty in DataFormat "
            "bliss1")
    ScanInfo = pushed(
        Attribute.SCAN_INFO, dtype=str, label="Scan info", display_level=DispLevel.EXPERT,
        doc="scan_info of the sequence as JSON (as stored in Redis)")

    # -- one attribute per declared channel (devices.channels) --------------------------------
    def read_channel(self, attr: Any) -> None:
        attr.set_value(self._windows[attr.get_name()].value())

    def _create_channel_attributes(self, specs: dict[str, ChannelSpec]) -> None:
        """One attribute per declared channel, with change and data-ready events. Only at the
        server's start: attributes are never added or removed while clients may ask for their
        configuration (an ``Init`` with other ``Channels`` asks for a restart in the Status)."""
        if hasattr(self, "_channel_attributes"):
            if specs != self._channel_attributes:
                self._restart_note = (" The Channels property changed: restart the server to "
                                      "create the new channel attributes.")
            return
        self._channel_attributes: dict[str, ChannelSpec] = dict(specs)
        self._windows = {name: PointWindow(spec, self.ChannelWindow)
                         for name, spec in specs.items()}
        self._data_ready = dict.fromkeys(specs, 0)
        for spec in specs.values():
            self.add_attribute(channel_attribute(spec, self._windows[spec.name].size,
                                                 self.read_channel))
            # attribute() flags are not applied to dynamic attributes: declare the events here
            self.set_change_event(spec.name, True, False)
            self.set_data_ready_event(spec.name, True)

    # -- commands -----------------------------------------------------------------------------
    @command(dtype_in=str, dtype_out=str,
             doc_in='Empty, a title, or JSON {"title": str, "scan_info": {...}, "channels": '
                    '[{"name": str, "dtype": "float64", "shape": [], "unit": str}], "path": '
                    'str (Bliss 2: the absolute .h5 file, "" for none)}',
             doc_out="db_name of the new sequence (scan_group node); its esrf:scan: key in "
                     "DataFormat bliss2")
    @refusals
    def Start(self, request: str) -> str:
        """Start a sequence; refused while one runs. Nothing is written when it is refused."""
        return self.service.start(
            parse_start_request(request, RESERVED_NAMES, self._channel_attributes))

    @command(dtype_in=str, dtype_out=str,
             doc_in="A scan number (of the BasePath container; of the Session in DataFormat "
                    "bliss2), a scan db_name, or a Bliss 2 scan key (esrf:scan:...)",
             doc_out="db_name (Bliss 2: key) of the referenced scan, or 'pending:<number>' for "
                     "a scan that has not started yet (referenced as soon as it does)")
    @refusals
    def AddScan(self, reference: str) -> str:
        """Reference a scan in the running sequence."""
        return self.service.add_scan(reference)

    @command(dtype_in="DevVarDoubleStringArray", dtype_out=int,
             doc_in="([points...], [channel name]); points are flattened for channels whose "
                    "points are arrays",
             doc_out="Number of points written")
    @refusals
    def EmitChannel(self, argin: tuple[numpy.ndarray, list[str]]) -> int:
        """Append points to a custom channel (converted to its dtype without loss, or refused)."""
        values, names = argin
        if len(names) != 1:
            raise ManagerError(Reason.BAD_REQUEST,
                               "give exactly one channel name in the string part")
        return self.service.emit(names[0], numpy.asarray(values), flat=True)

    @command(dtype_in="DevEncoded", dtype_out=int,
             doc_in="(channel name, .npy bytes as numpy.save writes them): one point or a block "
                    "of points of any declared dtype and shape",
             doc_out="Number of points written")
    @refusals
    def EmitChannelEncoded(self, argin: tuple[str, bytes]) -> int:
        """Append points to a custom channel without going through doubles."""
        name, payload = argin
        return self.service.emit(name, decode_npy(bytes(payload)))

    @command(dtype_out=str, doc_out="Final state of the sequence (DONE, KILLED, USER_ABORTED)")
    @refusals
    def End(self) -> str:
        """End the sequence; fails (after ending it) if scans added by number never started."""
        return self.service.end()

    @command(dtype_out=str, doc_out="USER_ABORTED")
    @refusals
    def Abort(self) -> str:
        """End the sequence as USER_ABORTED without waiting for pending scans."""
        return self.service.abort()

    @command(dtype_in=str, dtype_out=str,
             doc_in='Scans as JSON {"scans": [12, "<db_name>"], "title": str, "scan_info": {}} '
                    "or a list of numbers / db_names ('12 13 14')",
             doc_out="db_name of the new group")
    @refusals
    def CreateGroup(self, request: str) -> str:
        """Group existing scans in one call (independent of the running sequence)."""
        return self.service.create_group(request)
