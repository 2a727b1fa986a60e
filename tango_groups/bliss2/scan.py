"""A Bliss 2 scan written through blissdata 2.x, as ``tango_groups.scanning.Scan`` drives it.

``ScanWriter`` answers the calls ``Scan.run`` makes of the Bliss 1.x writer (``prepared``,
``emit``, ``end``; ``db_name`` is the scan's ``esrf:scan:<ULID>`` key here), over
``streams.create_scan``: one stream per channel, named by the channel's fullname
(``timer:elapsed_time``), written synchronously; ``prepared`` makes it PREPARED then STARTED,
``end`` STOPPED then CLOSED with ``info["end_reason"]``. What a sequence scan shares with it lives
here too: the end of a scan, stream definitions, info made JSON-ready, checked channel points.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import numpy
from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

from ..data.channel import ChannelSpec
from .streams import StreamWriter, create_scan, seal

__all__ = ["END_REASONS", "ChannelStream", "ScanWriter", "close_scan", "end_scan", "json_ready",
           "now", "stream_definition"]

# Bliss 1.x final states (what Scan and Sequence decide) -> Bliss 2 ``info["end_reason"]``
END_REASONS = {"DONE": "SUCCESS", "USER_ABORTED": "USER_ABORT", "KILLED": "FAILURE"}


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat()


def json_ready(value: Any) -> Any:
    """``value`` as blissdata's JSON ``info`` takes it (dates as ISO text, numpy as Python)."""
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    if isinstance(value, numpy.generic):
        return value.item()
    return value


def stream_definition(name: str, spec: ChannelSpec) -> Any:
    """A numeric stream ``name`` of the channel's dtype and shape (its unit in ``info``)."""
    info = {} if spec.unit is None else {"unit": spec.unit}
    return Stream.make_definition(name, spec.dtype, spec.shape, info)


def close_scan(scan: Scan, reason: str = "FAILURE", info: Mapping[str, Any] | None = None
               ) -> None:
    """CLOSED from any state (every stream sealed), ``end_reason``, ``end_time`` (unless ``info``
    gives it) and ``info`` set (blissdata lets ``info`` change on CLOSED); nothing when already
    closed."""
    if scan.state is ScanState.CLOSED:
        return
    scan.info = {**scan.info, "end_time": now(), **(info or {}), "end_reason": reason}
    scan.close()


def end_scan(scan: Scan, reason: str = "SUCCESS", info: Mapping[str, Any] | None = None
             ) -> None:
    """STOPPED (when STARTED) then CLOSED (``close_scan``). When stopping fails, it is closed
    all the same: as FAILURE, unless it was being aborted (an abort stays an abort)."""
    if scan.state is ScanState.STARTED:
        try:
            scan.stop()
        except BaseException:
            close_scan(scan, reason if reason == "USER_ABORT" else "FAILURE", info)
            raise
    close_scan(scan, reason, info)


class ChannelStream:
    """A stream that takes checked points (converted to its dtype, shaped ``(n,) + shape``)."""

    def __init__(self, spec: ChannelSpec, stream: StreamWriter) -> None:
        self.spec = spec
        self.stream = stream

    def points(self, data: Any) -> numpy.ndarray:
        return self.spec.points(data)

    def send(self, block: numpy.ndarray) -> None:
        if len(block):
            self.stream.send(block)

    def emit(self, data: Any) -> numpy.ndarray:
        """Check and send ``data``; returns the block sent (``ChannelDataError`` when refused)."""
        block = self.points(data)
        self.send(block)
        return block


class ScanWriter:
    """One Bliss 2 scan being written (see the module docstring); CREATED on construction."""

    def __init__(self, store: DataStore, identity: Mapping[str, Any], info: Mapping[str, Any],
                 channels: Iterable[ChannelSpec]) -> None:
        specs = {spec.name: spec for spec in channels}
        self.scan, self.writers = create_scan(
            store, identity, json_ready(info),
            [stream_definition(name, spec) for name, spec in specs.items()])
        self.channels = {name: ChannelStream(spec, self.writers[name])
                         for name, spec in specs.items()}
        self.ended = False

    @property
    def db_name(self) -> str:
        """The scan's key, ``esrf:scan:<ULID>`` (what blissdata's ``load_scan`` takes)."""
        return self.scan.key

    @property
    def scan_nb(self) -> int:
        return int(self.scan.number)

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.scan.info)

    def prepared(self, scan_info: Mapping[str, Any]) -> None:
        """PREPARED (``scan_info`` merged into ``info`` first), then STARTED."""
        if scan_info:
            self.scan.info = {**self.scan.info, **json_ready(scan_info)}
        try:
            self.scan.prepare()
            self.scan.start()
        except BaseException:
            self._seal()
            close_scan(self.scan)
            raise

    def emit(self, points: Mapping[str, Any]) -> dict[str, numpy.ndarray]:
        """Send points of several channels (all checked before any is sent)."""
        blocks = {name: self.channels[name].points(data) for name, data in points.items()}
        for name, block in blocks.items():
            self.channels[name].send(block)
        return blocks

    def end(self, scan_info: Mapping[str, Any], state: str, exception: str = "",
            once: bool = False) -> str:
        """STOPPED then CLOSED, ``end_reason`` from the final 1.x ``state``; returns ``state``.
        (``once``: ending twice is harmless here, a closed scan stays as it is.)"""
        info = {**json_ready(scan_info), **({"exception": exception} if exception else {})}
        if self.scan.state is not ScanState.CLOSED:
            self._seal()
        end_scan(self.scan, END_REASONS.get(state, "FAILURE"), info)
        self.ended = True
        return state

    def _seal(self) -> None:
        seal(self.writers.values())
