"""``Scan`` and ``ScanState``: a scan that writes itself into Redis as Bliss 1.x does.

A scan is declared with its channels (``ChannelNode``: device path, name, dtype, shape, unit) and
an acquisition function that produces points; ``run()`` then goes through Bliss's life cycle::

    number allocated, node + devices + channels created      state PREPARING
    scan_info re-written, PREPARED_SCAN                       state STARTING   (listeners called)
    acquisition: points published, one round trip per point
    END_SCAN, end times, final state, TTLs                    DONE | USER_ABORTED | KILLED

State listeners (``add_state_listener``) are called synchronously, in the thread running the scan,
after the Redis write of that state committed: a sequence publishes its reference to the scan from
there, so listeners following the sequence see the scan as soon as it started.
"""

from __future__ import annotations

import datetime
import enum
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy

from ..bliss1.writer import STRTIME_FORMAT, ChannelNode
from ..session import Session, get_current_session
from .model import ScanOut

if TYPE_CHECKING:
    from ..bliss1.node import DataNode

__all__ = ["Scan", "ScanAbort", "ScanData", "ScanState"]

PUBLISHER = "tango_groups"


class ScanState(enum.IntEnum):
    """Bliss's scan states; stored in Redis by name, compared by value (states only go up)."""

    IDLE = 0
    PREPARING = 1
    STARTING = 2
    STOPPING = 3
    DONE = 4
    USER_ABORTED = 5
    KILLED = 6


class ScanAbort(Exception):
    """Raised inside an acquisition to stop the scan as USER_ABORTED."""


class ScanData(dict):
    """``scan.get_data()``: arrays by channel fullname, also reachable by short name or counter."""

    def __getitem__(self, key: Any) -> numpy.ndarray:
        name = getattr(key, "fullname", key)
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        matches = [v for k, v in self.items() if k.rsplit(":", 1)[-1] == name]
        if len(matches) == 1:
            return matches[0]
        raise KeyError(f"{name!r} is {'ambiguous' if matches else 'not a channel'} in this scan; "
                       f"channels: {sorted(self)}")


def chain_description(specs: Sequence[ChannelNode]) -> dict[str, Any]:
    """The ``acquisition_chain`` and ``channels`` scan_info entries Flint and readers look at."""
    top = specs[0].device[0] if specs and specs[0].device else "master"
    master: dict[str, list[str]] = {"scalars": [], "spectra": [], "images": []}
    below: dict[str, list[str]] = {"scalars": [], "spectra": [], "images": []}
    channels = {}
    for spec in specs:
        kind = ("scalars", "spectra", "images")[min(len(spec.shape), 2)]
        (master if spec.device == (top,) else below)[kind].append(spec.channel_fullname)
        channels[spec.channel_fullname] = {
            "display_name": spec.name, "dim": len(spec.shape),
            **({"unit": spec.unit} if spec.unit else {}),
        }
    devices = sorted({":".join(spec.device) for spec in specs if spec.device})
    return {
        "acquisition_chain": {top: {"master": master, **below, "devices": devices}},
        "channels": channels,
    }


def start_info(scan_info: Mapping[str, Any], session: Session, specs: Sequence[ChannelNode],
               save: bool = True) -> dict[str, Any]:
    """scan_info completed as Bliss does when a scan (or a sequence) starts."""
    start = datetime.datetime.now()
    return {
        **scan_info,
        "session_name": session.name,
        "user_name": session.user_name,
        "save": save,
        "data_writer": "null",
        "data_policy": "None",
        "publisher": PUBLISHER,
        "publisher_version": _version(),
        "start_time": start,
        "start_time_str": start.strftime(STRTIME_FORMAT),
        "start_timestamp": start.timestamp(),
        **chain_description(specs),
        "state": ScanState.PREPARING.name,
    }


class Scan:
    """A scan of ``channels`` whose points come from ``acquisition(scan)``.

    ``acquisition`` publishes with ``scan.emit({fullname: points, ...})``; raising ``ScanAbort``
    (or KeyboardInterrupt) ends the scan USER_ABORTED, any other exception KILLED.
    """

    node_type = "scan"

    def __init__(
        self,
        name: str,
        channels: Sequence[ChannelNode],
        acquisition: Callable[[Scan], None],
        *,
        title: str | None = None,
        scan_info: Mapping[str, Any] | None = None,
        save: bool = True,
        session: Session | None = None,
    ) -> None:
        self.name = name
        self.session = session or get_current_session()
        self._specs = list(channels)
        self._acquisition = acquisition
        self.save = save
        self.scan_info: dict[str, Any] = {"title": title or name, "type": name, **(scan_info or {})}
        self._state = ScanState.IDLE
        self._writer: ScanOut | None = None
        self._data: dict[str, list[numpy.ndarray]] = {s.channel_fullname: [] for s in self._specs}
        self._listeners: list[Callable[[Scan, ScanState], None]] = []
        self._lock = threading.Lock()

    # -- what a user reads -------------------------------------------------------------------
    @property
    def state(self) -> ScanState:
        return self._state

    @property
    def db_name(self) -> str | None:
        """Where the scan is, once it runs: its node's db_name (bliss1), its key (bliss2)."""
        return self._writer.db_name if self._writer else None

    key = db_name  # bliss2: ``esrf:scan:<ULID>``, what blissdata's ``load_scan`` takes

    @property
    def scan_number(self) -> int | None:
        return self._writer.scan_nb if self._writer else None

    @property
    def node(self) -> DataNode | None:
        """The scan's data node (``tango_groups.bliss1.node``), once the scan started (bliss1;
        None in bliss2)."""
        return None if self._writer is None else self.session.model.node(self._writer.db_name)

    def get_data(self) -> ScanData:
        """Every point published so far, by channel (also by short name or counter object)."""
        return ScanData({name: numpy.concatenate(blocks) if blocks else numpy.empty(0)
                         for name, blocks in self._data.items()})

    def add_state_listener(self, listener: Callable[[Scan, ScanState], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_state_listener(self, listener: Callable[[Scan, ScanState], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- life cycle -------------------------------------------------------------------------
    def _set_state(self, state: ScanState) -> None:
        self._state = state
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(self, state)


    def run(self) -> None:
        """Run the scan to its end (blocking). A scan runs once."""
        if self._state != ScanState.IDLE:
            raise RuntimeError(
                f"scan {self.name!r} has already been run (state {self._state.name})"
            )
        self._state = ScanState.PREPARING
        info = start_info(self.scan_info, self.session, self._specs, save=self.save)
        writer = self.session.model.create_scan(self.name, info, self._specs, save=self.save,
                                                node_type=self.node_type)
        self._writer = writer
        self.scan_info = dict(writer.info)
        self._set_state(ScanState.PREPARING)
        writer.prepared({})
        self._set_state(ScanState.STARTING)
        final, exception = ScanState.DONE, ""
        try:
            self._acquisition(self)
        except (KeyboardInterrupt, ScanAbort) as error:
            final, exception = ScanState.USER_ABORTED, str(type(error))
            raise
        except BaseException as error:
            final, exception = ScanState.KILLED, str(type(error))
            raise
        finally:
            self._state = ScanState.STOPPING
            writer.end({}, final.name, exception)
            self.scan_info = dict(writer.info)
            self._set_state(final)

    def emit(self, points: Mapping[str, Any]) -> None:
        """Publish points of several channels in one round trip (all checked before writing)."""
        if self._writer is None or self._state != ScanState.STARTING:
            raise RuntimeError(f"scan {self.name!r} is not acquiring (state {self._state.name})")
        for name, block in self._writer.emit(points).items():
            self._data[name].append(block)

    def __repr__(self) -> str:
        where = self.db_name or "not started"
        return f"<Scan {self.name} {where} {self._state.name}>"


def _version() -> str:
    from .. import __version__

    return __version__
