"""A Bliss 2 sequence scan written through blissdata 2.x (see the package docstring for the model).

    store = data_store(url)                       # DataStore, the db set up on first use
    sequence = SequenceScan(store, session="demo", number=7, title="my sequence",
                            channels=[ChannelSpec("temperature", "float64")])
    sequence.add_scan(key)                        # a sub-scan by its esrf:scan:... key
    sequence.emit("temperature", [21.5, 21.7])    # points of a custom channel
    sequence.end()                                # stop + close: every stream sealed

The sequence scan is CREATED with its streams declared in its first document, then PREPARED and
STARTED in the constructor (blissdata lets ``info`` change only on PREPARED and CLOSED).
``reopen`` takes over one a crashed writer left STARTED. Each call is in Redis when it returns
(``streams.StreamWriter``, no background sender); after a call that got no answer, ``resync``
tells what landed. ``end()`` and ``close()`` always leave it CLOSED, whatever happened before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore
from blissdata.streams.scan_sequence import ScanStream

from ..data.channel import ChannelSpec
from .scan import close_scan, now, stream_definition
from .streams import StreamWriter, create_scan, open_scan

__all__ = ["CUSTOM", "SUBSCANS", "SequenceScan", "custom_stream_name"]

SUBSCANS = "GroupingMaster:SUBSCANS"  # the stream of sub-scan references, named as Bliss 2 does
CUSTOM = "custom_channels"  # custom channel streams: "custom_channels:{name}", as in 1.x nodes


def custom_stream_name(name: str) -> str:
    """The stream of custom channel ``name`` in the sequence scan."""
    return f"{CUSTOM}:{name}"


class SequenceScan:
    """One sequence scan, STARTED from construction (or ``reopen``) until ``end()`` (or
    ``close()``). Every call writes to Redis before it returns (``streams.StreamWriter``)."""

    def __init__(self, store: DataStore, *, session: str, number: int, title: str,
                 name: str = "sequence_of_scans", data_policy: str = "no_policy",
                 path: str | None = None, scan_info: Mapping[str, Any] | None = None,
                 channels: Iterable[ChannelSpec] = (),
                 on_created: Callable[[str], None] | None = None) -> None:
        identity = {"name": name, "number": number, "data_policy": data_policy,
                    "session": session, "path": path}
        info = {**(scan_info or {}), "title": title, "type": name, "name": name,
                "scan_nb": number, "session_name": session, "is_scan_sequence": True,
                "start_time": now()}
        definitions = [ScanStream.make_definition(SUBSCANS),
                       *(self._definition(spec) for spec in channels)]
        self.store = store
        self._take(*create_scan(store, identity, info, definitions))
        try:
            if on_created is not None:  # e.g. record it, so that a crash from here on closes it
                on_created(self.scan.key)
            self.scan.prepare()
            self.scan.start()
        except BaseException:
            self.close("FAILURE")
            raise

    def _take(self, scan: Scan, writers: dict[str, StreamWriter]) -> None:
        """Write ``scan`` with ``writers`` from now on; its sub-scans read back from Redis
        (none when it was just created)."""
        self.scan, self.writers = scan, writers
        self.subscans = writers[SUBSCANS]
        self.channels = {name[len(CUSTOM) + 1:]: writer for name, writer in writers.items()
                         if name.startswith(f"{CUSTOM}:")}
        entries = self.subscans.json_points() if self.subscans.written else []
        self.keys: list[str] = [entry["key"] for entry in entries]
        self.scan_numbers: list[int] = [int(entry["scan_number"]) for entry in entries]

    @classmethod
    def reopen(cls, store: DataStore, key: str) -> SequenceScan:
        """Take over the STARTED sequence scan ``key`` that its writer left (a crash): its
        sub-scans read back, each stream written on after its last point. blissdata's
        ``ScanNotFoundError`` when it is gone; ``ValueError`` when it is no running sequence."""
        scan, writers = open_scan(store, key)
        if scan.state is not ScanState.STARTED or SUBSCANS not in writers:
            raise ValueError(f"{key} is no running sequence scan ({scan.state.name})")
        sequence = cls.__new__(cls)
        sequence.store = store
        sequence._take(scan, writers)
        return sequence

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
        self.keys.append(key)
        self.scan_numbers.append(scan_number)
        return scan_number

    def emit(self, channel: str, data: Any) -> None:
        """Append one point, or a batch along the first axis, to a custom channel."""
        self.channels[channel].send(data)

    def resync(self) -> dict[str, int]:
        """Read the scan again (after a write that got no answer: its state, the end of each
        stream, the sub-scans): returns, by stream name, the points Redis holds beyond what
        was written here (a write landed after all; negative: Redis lost some), for the
        streams where they differ."""
        before = {name: writer.written for name, writer in self.writers.items()}
        self._take(*open_scan(self.store, self.key))
        return {name: writer.written - before[name] for name, writer in self.writers.items()
                if writer.written != before[name]}

    def end(self, reason: str = "SUCCESS", info: Mapping[str, Any] | None = None) -> None:
        """Every stream sealed, then STOPPED and CLOSED, ``info["end_reason"]`` and ``end_time``
        set (and ``info``: blissdata lets it change at CLOSED); nothing stays open."""
        self._seal()
        if self.scan.state is ScanState.STARTED:
            self.scan.stop()
        close_scan(self.scan, reason, info)

    def close(self, reason: str = "FAILURE") -> None:
        """CLOSED from any state (every stream sealed); nothing when already closed."""
        if self.scan.state is not ScanState.CLOSED:
            self._seal()
        close_scan(self.scan, reason)

    def _seal(self) -> None:
        for writer in self.writers.values():
            writer.seal()
