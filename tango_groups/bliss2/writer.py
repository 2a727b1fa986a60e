"""The Bliss 2 writer of a ``Session(..., data_format="bliss2")``: scans and sequence scans.

``tango_groups.scanning`` keeps one implementation of the rules of scans, sequences and groups;
what it writes goes to the session's writer. Here that writer is blissdata 2.x: ``create_scan``
gives a ``ScanWriter`` (``tango_groups.bliss2.scan``), ``create_sequence`` a ``SequenceWriter``
over ``SequenceScan``, both answering the calls the Bliss 1.x writers answer (``db_name`` being
the ``esrf:scan:<ULID>`` key). Every scan gets the ESRF identity: its name, a number from the
session's counter (``store.next_number``), the session, ``data_policy`` ``no_policy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from blissdata.exceptions import ScanNotFoundError

from ..data.channel import ChannelSpec
from .scan import END_REASONS, ChannelStream, ScanWriter, json_ready
from .sequence import SequenceScan
from .store import data_store, next_number, scan_of_number

__all__ = ["Bliss2Writer", "SequenceWriter"]

DATA_POLICY = "no_policy"


class SequenceWriter:
    """A ``SequenceScan`` answering the calls ``Sequence`` makes of the 1.x ``GroupWriter``.

    ``channels``: the custom channels by fullname (``AcquisitionChannel.bind`` takes them)."""

    def __init__(self, sequence: SequenceScan, channels: Iterable[ChannelSpec]) -> None:
        self.sequence = sequence
        self.channels = {spec.name: ChannelStream(spec, sequence.channels[spec.short_name])
                         for spec in channels}
        self.ended = False

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

    def create_scan(self, name: str, info: Mapping[str, Any], channels: Iterable[ChannelSpec]
                    ) -> ScanWriter:
        """A CREATED scan with one stream per channel (``ScanWriter``)."""
        identity = self._identity(name)
        return ScanWriter(self.store, identity, {**info, "scan_nb": identity["number"]},
                          channels)

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
