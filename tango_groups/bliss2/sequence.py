"""A Bliss 2 sequence scan written through blissdata 2.x (see the package docstring for the model).

    store = data_store(url)                       # DataStore, the db set up on first use
    sequence = SequenceScan(store, session="demo", number=7, title="my sequence",
                            channels=[ChannelSpec("temperature", "float64")])
    sequence.add_scan(key)                        # a sub-scan by its esrf:scan:... key
    sequence.emit("temperature", [21.5, 21.7])    # points of a custom channel
    sequence.end()                                # stop + close: every stream sealed

The sequence scan is CREATED, its streams declared and PREPARED, then STARTED in the constructor
(blissdata lets ``info`` change only on PREPARED and CLOSED, and streams reach readers with the
PREPARED document). ``end()`` and ``close()`` always leave it CLOSED, whatever happened before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore
from blissdata.streams.scan_sequence import ScanStream

from ..data.channel import ChannelSpec
from .scan import close_scan, end_scan, now, stream_definition
from .store import WRITER, WRITTEN_BY, bounded

__all__ = ["CUSTOM", "SUBSCANS", "SequenceScan", "custom_stream_name"]

SUBSCANS = "GroupingMaster:SUBSCANS"  # the stream of sub-scan references, named as Bliss 2 does
CUSTOM = "custom_channels"  # custom channel streams: "custom_channels:{name}", as in 1.x nodes


def custom_stream_name(name: str) -> str:
    """The stream of custom channel ``name`` in the sequence scan."""
    return f"{CUSTOM}:{name}"



class SequenceScan:
    """One sequence scan, STARTED from construction until ``end()`` (or ``close()``)."""

    def __init__(self, store: DataStore, *, session: str, number: int, title: str,
                 name: str = "sequence_of_scans", data_policy: str = "no_policy",
                 path: str | None = None, scan_info: Mapping[str, Any] | None = None,
                 channels: Iterable[ChannelSpec] = (),
                 on_created: Callable[[str], None] | None = None) -> None:
        self.store = store
        identity = {"name": name, "number": number, "data_policy": data_policy,
                    "session": session, "path": path}
        info = {**(scan_info or {}), "title": title, "type": name, "name": name,
                "scan_nb": number, "session_name": session, "is_scan_sequence": True,
                "start_time": now(), WRITTEN_BY: WRITER}
        self.scan: Scan = store.create_scan(identity, info)
        try:
            if on_created is not None:  # e.g. record it, so that a crash from here on closes it
                on_created(self.scan.key)
            self.subscans = self.scan.create_stream(ScanStream.make_definition(SUBSCANS))
            self.channels = {spec.short_name: self.scan.create_stream(self._definition(spec))
                             for spec in channels}
            self.scan.prepare()
            self.scan.start()
        except BaseException:
            self.close("FAILURE")
            raise
        self.scan_numbers: list[int] = []

    @staticmethod
    def _definition(spec: ChannelSpec) -> Any:
        return stream_definition(custom_stream_name(spec.short_name), spec)

    @property
    def key(self) -> str:
        """``esrf:scan:<ULID>``: what blissdata's ``load_scan`` and ``search`` return."""
        return self.scan.key

    @property
    def state(self) -> ScanState:
        return self.scan.state

    def add_scan(self, key: str, scan_number: int | None = None) -> int:
        """Reference the scan ``key`` as the next sub-scan; returns its number.

        Without ``scan_number``, the scan is loaded for the number in its identity (it must
        exist: blissdata's ``ScanNotFoundError`` otherwise); a caller that knows both saves
        that round trip.
        """
        if scan_number is None:
            scan_number = int(self.store.load_scan(key).number)
        self.subscans.send({"key": key, "scan_number": scan_number})
        self.scan_numbers.append(scan_number)
        return scan_number

    def emit(self, channel: str, data: Any) -> None:
        """Append one point, or a batch along the first axis, to a custom channel."""
        self.channels[channel].send(data)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything sent so far is in Redis (the sinks send in the background);
        with ``timeout``, ``RedisTimeoutError`` after that long (see ``store.bounded``)."""
        for stream in [self.subscans, *self.channels.values()]:
            bounded(stream.join, timeout)

    def end(self, reason: str = "SUCCESS") -> None:
        """STOPPED then CLOSED, ``info["end_reason"]`` and ``end_time`` set; nothing stays open."""
        end_scan(self.scan, reason)

    def close(self, reason: str = "FAILURE") -> None:
        """CLOSED from any state (every stream sealed); nothing when already closed."""
        close_scan(self.scan, reason)

