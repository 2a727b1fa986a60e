"""The Bliss 2 data model of a ``Session(..., data_format="bliss2")``: scans and sequence scans.

``tango_groups.scanning`` keeps one implementation of the rules of scans, sequences and groups;
where the models differ it asks the session's model (``scanning.model.DataModel``). Here that
model is ``Bliss2Writer``, over blissdata 2.x: ``create_scan`` gives a ``ScanWriter``
(``tango_groups.bliss2.scan``), ``create_sequence`` a ``SequenceWriter`` over ``SequenceScan``
(``scanning.model.ScanOut`` and ``SequenceOut``; ``db_name`` being the ``esrf:scan:<ULID>``
key). Every scan gets the ESRF identity: its name, a number from the session's counter
(``store.next_number``), the session, ``data_policy`` ``no_policy``. Scans are referenced by key
or by number; there are no data nodes. A number whose scan is not PREPARED yet is followed
(``follow_numbers``: ``pending.NumberFollowers``, the followers the service uses too) and
referenced once it is. A sequence scan another process left STARTED (``running_sequence``) is
taken over (``attach_sequence``: ``SequenceScan.reopen``): its sub-scans and points stay, the
next ones are written after them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.scan import ScanState

from ..data.channel import ChannelSpec
from ..data.connection import Redis, RedisError
from ..scanning.model import ScanSequenceError
from .pending import NumberFollowers, PreparedScan
from .scan import END_REASONS, ChannelStream, ScanWriter, json_ready
from .sequence import SUBSCANS, SequenceScan, custom_stream_name
from .store import data_store, next_number, scan_of_number, stream_tails

if TYPE_CHECKING:
    from ..scanning.model import ChannelNode

__all__ = ["Bliss2Writer", "SequenceWriter"]

DATA_POLICY = "no_policy"
KEY_PREFIX = "esrf:scan:"  # of every scan key (blissdata's ESRF identity model)
SCANS, SCAN_NUMBERS = "scans", "scan_numbers"  # where resync() gives the references (as 1.x)


class SequenceWriter:
    """A ``SequenceScan`` answering the calls ``Sequence`` makes of the 1.x ``GroupWriter``.

    ``channels``: the custom channels by fullname (``AcquisitionChannel.bind`` takes them);
    ``reopened``: the sequence was written by another process (its sub-scans and points are
    news to the ``Sequence``: the first ``resync`` returns them)."""

    def __init__(self, sequence: SequenceScan, channels: Iterable[ChannelSpec],
                 reopened: bool = False) -> None:
        self.sequence = sequence
        self.channels = {spec.name: ChannelStream(spec, self._stream(spec))
                         for spec in channels}
        self.ended = False
        self._told = dict.fromkeys([SCANS, *self.channels], 0) if reopened else None

    def _stream(self, spec: ChannelSpec) -> Any:
        try:
            return self.sequence.channels[spec.short_name]
        except KeyError:
            raise ScanSequenceError(
                f"{self.sequence.key} has no custom channel {spec.short_name!r} (it has "
                f"{sorted(self.sequence.channels)}): reopen it with those") from None

    def _counts(self) -> dict[str, int]:
        return {SCANS: len(self.sequence.keys),
                **{name: channel.stream.written for name, channel in self.channels.items()}}

    def resync(self) -> dict[str, Any]:
        """What Redis holds beyond what this writer told its ``Sequence`` (see
        ``scanning.model.SequenceOut.resync``): the sequence scan read again."""
        told = self._told or self._counts()
        self._told = None
        self.sequence.resync()
        for channel in self.channels.values():  # resync() opened new writers
            channel.stream = self.sequence.channels[channel.spec.short_name]
        now = self._counts()
        found: dict[str, Any] = {}
        if now[SCANS] > told[SCANS]:
            found[SCANS] = self.sequence.keys[told[SCANS]:]
            found[SCAN_NUMBERS] = self.sequence.scan_numbers[told[SCANS]:]
        starts = {custom_stream_name(channel.spec.short_name): told[name]
                  for name, channel in self.channels.items() if now[name] > told[name]}
        tails = stream_tails(self.sequence.store, self.sequence.key, starts) if starts else {}
        for name, channel in self.channels.items():
            if (stream := custom_stream_name(channel.spec.short_name)) in tails:
                found[name] = tails[stream]
        return found

    @property
    def db_name(self) -> str:
        return self.sequence.key

    @property
    def scan_nb(self) -> int:
        return int(self.sequence.scan.number)

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.sequence.scan.info)

    def prepared(self, scan_info: Mapping[str, Any]) -> None:
        """Nothing: a ``SequenceScan`` is STARTED from its construction."""

    def publish_scan(self, key: str, scan_nb: int, ended: bool | None = None) -> None:
        """Reference scan ``key`` in ``GroupingMaster:SUBSCANS``."""
        self.sequence.add_scan(key, scan_nb)

    def end(self, scan_info: Mapping[str, Any], state: str, exception: str = "",
            once: bool = False) -> str:
        """STOPPED then CLOSED (``end_reason`` from the 1.x ``state``); returns ``state``."""
        self.sequence.end(END_REASONS.get(state, "FAILURE"))
        self.ended = True
        return state


class Bliss2Writer:
    """Scans of session ``session`` in the blissdata 2 store at ``url`` (set up on first use)."""

    def __init__(self, url: str, session: str) -> None:
        self.store = data_store(url)
        self.session = session

    def _numbers(self) -> int:
        return next_number(self.store, self.session)

    def _identity(self, name: str) -> dict[str, Any]:
        return {"name": name, "number": self._numbers(), "data_policy": DATA_POLICY,
                "session": self.session}

    def create_scan(self, name: str, info: Mapping[str, Any], channels: Sequence[ChannelNode],
                    *, save: bool = True, node_type: str = "scan") -> ScanWriter:
        """A CREATED scan with one stream per channel (``ScanWriter``; every scan is saved)."""
        identity = self._identity(name)
        return ScanWriter(self.store, identity, {**info, "scan_nb": identity["number"]},
                          [channel.spec for channel in channels])

    def sequence_channels(self, custom: Sequence[ChannelNode]) -> list[ChannelNode]:
        """The custom channels only (the sub-scans' stream is no channel of the description)."""
        return list(custom)

    def create_sequence(self, name: str, info: Mapping[str, Any],
                        channels: Iterable[ChannelSpec]) -> SequenceWriter:
        """A STARTED sequence scan with a stream per custom channel (``SequenceWriter``)."""
        channels = list(channels)
        number = self._numbers()
        sequence = SequenceScan(self.store, session=self.session, number=number,
                                title=str(info.get("title", name)), name=name,
                                data_policy=DATA_POLICY, scan_info=json_ready(info),
                                channels=channels)
        return SequenceWriter(sequence, channels)

    def member(self, scan: Any) -> tuple[str, int]:
        """A scan key or a number of the session's scans: (its key, its number)."""
        if isinstance(scan, int) and not isinstance(scan, bool):
            key = self.find_scan(scan)
            if key is None:
                raise ScanSequenceError(f"Scan number '{scan}' not found")
        elif isinstance(scan, str):
            key = scan
        else:
            raise ScanSequenceError(f"Invalid argument: no scan corresponds to {scan}")
        try:
            return key, self.scan_number(key)
        except LookupError as error:
            raise ScanSequenceError(f"Scan {scan} cannot be added: {error}") from None

    def reference(self, scan: Any, scan_nb: int | None) -> tuple[str, int]:
        """A scan key: (the key, its number: ``LookupError`` when there is no such scan)."""
        if not isinstance(scan, str):
            raise ScanSequenceError("Only scans can be added to group")
        return scan, self.scan_number(scan) if scan_nb is None else scan_nb

    def node(self, db_name: str) -> None:
        """None: Bliss 2 has no data nodes (blissdata's ``load_scan(key)`` reads a scan)."""

    def nodes(self, names: Sequence[str]) -> list[Any]:
        """The keys themselves."""
        return list(names)

    def follow_numbers(self, watch_client: Redis, on_prepared: Callable[[PreparedScan], None],
                       on_error: Callable[[RedisError], None]) -> NumberFollowers:
        """``NumberFollowers`` of the session, following with this model's store
        (``watch_client``, a 1.x client, is not used)."""
        return NumberFollowers(self.store, self.session, on_prepared, on_error)

    def running_sequence(self, db_name: str) -> dict[str, Any]:
        """The info of the sequence scan ``db_name`` of this session, STARTED (``state``: the
        1.x ``STARTING``); ``ScanSequenceError`` otherwise."""
        try:
            if not db_name.startswith(KEY_PREFIX):
                raise ValueError(f"a Bliss 2 key starts with {KEY_PREFIX!r}")
            scan = self.store.load_scan(db_name)
        except (ScanNotFoundError, ValueError) as error:
            raise ScanSequenceError(f"{db_name} is not a sequence in Redis ({error})") from None
        if SUBSCANS not in scan.streams:
            raise ScanSequenceError(f"{db_name} is not a sequence in Redis (a scan "
                                    f"{scan.name!r}: only a sequence scan can be reopened)")
        if scan.session != self.session:
            raise ScanSequenceError(f"{db_name} is a sequence of session {scan.session!r}: "
                                    f"reopen it in a Session named so, not {self.session!r}")
        if scan.state is not ScanState.STARTED:
            raise ScanSequenceError(f"{db_name} has ended (state {scan.state.name})"
                                    if scan.state > ScanState.STARTED else
                                    f"{db_name} never started (state {scan.state.name})")
        return {**scan.info, "state": "STARTING"}

    def attach_sequence(self, db_name: str, info: Mapping[str, Any],
                        channels: Sequence[ChannelSpec]) -> SequenceWriter:
        """The sequence scan taken over (``SequenceScan.reopen``), custom channels ``channels``
        (some or all of its own)."""
        try:
            sequence = SequenceScan.reopen(self.store, db_name)
        except (ScanNotFoundError, ValueError) as error:  # ended or deleted meanwhile
            raise ScanSequenceError(f"{db_name} cannot be reopened: {error}") from None
        return SequenceWriter(sequence, channels, reopened=True)

    def find_scan(self, number: int) -> str | None:
        """The key of the session's newest scan numbered ``number`` (None: there is none)."""
        return scan_of_number(self.store, self.session, number)[0]

    def scan_number(self, key: str) -> int:
        """The number in the identity of scan ``key``; ``LookupError`` when there is no such scan
        (blissdata's ``ScanNotFoundError``, or not a scan key at all)."""
        try:
            return int(self.store.load_scan(key).number)
        except (ScanNotFoundError, ValueError, KeyError) as error:
            raise LookupError(f"no Bliss 2 scan {key!r}: {error}") from None
