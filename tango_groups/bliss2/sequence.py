"""A Bliss 2 sequence scan written through blissdata 2.x (see the package docstring for the model).

    store = data_store(url)                       # DataStore, the db set up on first use
    sequence = SequenceScan(store, session="demo", number=7, title="my sequence",
                            channels=[ChannelSpec("temperature", "float64")])
    sequence.add_scan(key)                        # a sub-scan by its esrf:scan:... key
    sequence.emit("temperature", [21.5, 21.7])    # points of a custom channel
    sequence.end()                                # stop + close: every stream sealed

The sequence scan is CREATED with its streams and its info in its first document, then PREPARED
and STARTED in the constructor (blissdata lets ``info`` change only on PREPARED and CLOSED).
``reopen`` takes over one a crashed writer left STARTED. Each call is in Redis when it returns
(``streams.StreamWriter``, no background sender); after a call that got no answer, ``resync``
tells what landed. ``end()`` and ``close()`` always leave it CLOSED, whatever happened before.

With a ``path`` (absolute: the HDF5 file), blisswriter saves it: ``info["h5maps"]`` holds its
entry from creation on (``h5maps``), and at CLOSED its ``end_time`` and a link to the entry of
each saved sub-scan (``h5maps.saved_entry``; sub-scans not saved get none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore
from blissdata.streams.scan_sequence import ScanStream

from ..data.channel import ChannelSpec
from .h5maps import Entry, saved_entry, sequence_h5maps
from .scan import close_scan, now, stream_definition
from .store import WRITER, WRITTEN_BY
from .streams import StreamWriter, create_scan, open_scan, seal

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
                    "session": session, "path": path or None}
        channels = tuple(channels)
        self.store, self.links = store, {}
        self.saved_in = Entry(path, number) if path else None
        info = {**(scan_info or {}), "title": title, "type": name, "name": name,
                "scan_nb": number, "session_name": session, "is_scan_sequence": True,
                "start_time": now(), WRITTEN_BY: WRITER}
        definitions = [ScanStream.make_definition(SUBSCANS),
                       *(stream_definition(custom_stream_name(spec.short_name), spec)
                         for spec in channels)]
        maps = self._h5maps(info, [spec.short_name for spec in channels], keys=[])
        self._take(*create_scan(store, identity, {**info, **maps}, definitions))
        try:
            if on_created is not None:  # e.g. record it, so that a crash from here on closes it
                on_created(self.scan.key)
            self.scan.prepare()
            self.scan.start()
        except BaseException:
            self.close("FAILURE")
            raise

    @classmethod
    def reopen(cls, store: DataStore, key: str) -> SequenceScan:
        """Take over the STARTED sequence scan ``key`` that its writer left (a crash): its
        sub-scans read back, each stream written on after its last point. blissdata's
        ``ScanNotFoundError`` when it is gone; ``ValueError`` when it is no running sequence."""
        scan, writers = open_scan(store, key)
        if scan.state is not ScanState.STARTED or SUBSCANS not in writers:
            raise ValueError(f"{key} is no running sequence scan ({scan.state.name})")
        sequence = cls.__new__(cls)
        sequence.store, sequence.links = store, {}
        sequence.saved_in = (Entry(scan.path, int(scan.number))
                             if scan.path and scan.info.get("h5maps") else None)
        sequence._take(scan, writers)
        return sequence

    def _take(self, scan: Scan, writers: dict[str, StreamWriter]) -> None:
        """Write ``scan`` with ``writers`` from now on; its sub-scans read back from Redis
        (none when it was just created), the entries of those not seen yet loaded."""
        self.scan, self.writers = scan, writers
        self.subscans = writers[SUBSCANS]
        self.channels = {name[len(CUSTOM) + 1:]: writer for name, writer in writers.items()
                         if name.startswith(f"{CUSTOM}:")}
        entries = self.subscans.json_points() if self.subscans.written else []
        self.keys: list[str] = [entry["key"] for entry in entries]
        self.scan_numbers: list[int] = [int(entry["scan_number"]) for entry in entries]
        if self.saved_in is not None:
            for key in set(self.keys) - set(self.links):
                try:
                    self.links[key] = saved_entry(self.store.load_scan(key))
                except ScanNotFoundError:
                    self.links[key] = None  # expired: nothing to link

    @property
    def key(self) -> str:
        """``esrf:scan:<ULID>``: what blissdata's ``load_scan`` and ``search`` return."""
        return self.scan.key

    @property
    def state(self) -> ScanState:
        return self.scan.state

    def _h5maps(self, info: Mapping[str, Any], channels: Iterable[str], keys: Iterable[str],
                end_time: str | None = None) -> dict[str, Any]:
        """``{"h5maps": ...}`` when it is saved (see the module docstring), else nothing."""
        if self.saved_in is None:
            return {}
        links = [entry for key in keys if (entry := self.links.get(key)) is not None]
        return {"h5maps": sequence_h5maps(
            self.saved_in, title=info["title"], start_time=info["start_time"],
            channels={name: custom_stream_name(name) for name in channels}, end_time=end_time,
            links=links)}

    def add_scan(self, key: str, scan_number: int | None = None,
                 saved_in: Entry | None = None) -> int:
        """Reference the scan ``key`` as the next sub-scan; returns its number. ``saved_in``:
        its entry in its file (``h5maps.saved_entry``), linked from the sequence's at CLOSED.

        Without ``scan_number``, the scan is loaded for the number in its identity (it must
        exist: blissdata's ``ScanNotFoundError`` otherwise); a caller that knows both saves
        that round trip.
        """
        if scan_number is None:
            scan_number = int(self.store.load_scan(key).number)
        self.subscans.send({"key": key, "scan_number": scan_number})
        self.keys.append(key)
        self.scan_numbers.append(scan_number)
        self.links[key] = saved_in
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
        set (and the final ``h5maps``, and ``info``: blissdata lets it change at CLOSED)."""
        self._seal()
        if self.scan.state is ScanState.STARTED:
            self.scan.stop()
        close_scan(self.scan, reason, {**self._final(), **(info or {})})

    def close(self, reason: str = "FAILURE") -> None:
        """CLOSED from any state (every stream sealed); nothing when already closed."""
        if self.scan.state is not ScanState.CLOSED:
            self._seal()
        close_scan(self.scan, reason, self._final())

    def _final(self) -> dict[str, Any]:
        end_time = now()
        return {"end_time": end_time,
                **self._h5maps(self.scan.info, self.channels, self.keys, end_time)}

    def _seal(self) -> None:
        seal(self.writers.values())
