"""What a ``Sequence`` offers the code around it: the context that adds scans to it, the
listener a service gives it, and Bliss's errors.

``SequenceContext`` is what ``sequence_context()`` (or ``start()``) yields; ``SequenceListener``
learns every reference and every change of the pending numbers, in order (the
SequenceManager turns those into Tango events); ``ScanSequenceError`` carries Bliss's messages
verbatim (defined with the data model's interface, ``scanning.model``: the models raise it too).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from ..bliss1 import lookup
from ..bliss1.lookup import ScanFacts
from ..bliss1.node import ScanNode
from ..data.connection import Redis, RedisError
from .model import ScanSequenceError
from .scan import Scan, ScanState

__all__ = ["ScanSequenceError", "SequenceContext", "SequenceListener", "aggregated_state",
           "scans_not_finished"]


def scans_not_finished(title: str) -> ScanSequenceError:
    """Bliss's error for a sequence ended while some added scans had not started."""
    return ScanSequenceError(
        f'Some scans of the sequence "{title}" have not finished before exiting the sequence '
        "context"
    )


def aggregated_state(scans: Iterable[Any], client: Redis) -> ScanState:
    """Bliss's StatePreset over a sequence's scans: a KILLED, else USER_ABORTED one sets the
    sequence's state, else DONE.

    ``scans``: Scan objects (their state), 1.x scan nodes (read from ``client``; a node whose
    state cannot be read, expired or refused by the allow-list, counts as DONE: it can no longer
    change how the sequence ended) and Bliss 2 keys (DONE: Bliss 2 has no such states)."""
    states = [ScanState.DONE]
    for scan in scans:
        if isinstance(scan, Scan):
            states.append(scan.state)
            continue
        if isinstance(scan, str):
            continue
        try:
            facts = lookup.scan_facts(client, scan.db_name)
        except lookup.UnreadableScan:
            continue
        if facts is not None and facts.state in ScanState.__members__:
            states.append(ScanState[facts.state])
    worst = max(states)
    return worst if worst in (ScanState.KILLED, ScanState.USER_ABORTED) else ScanState.DONE


class SequenceListener:
    """What a service learns from its sequence. ``scans_published`` and ``pending_changed`` are
    called with the sequence's lock held, in the order things happen (record or queue there;
    never wait for another thread that may need the sequence); ``follow_failed`` when Redis
    failed while following pending numbers, without the lock (``resync`` follows them again)."""

    def scans_published(self, numbers: tuple[int, ...], names: tuple[str, ...]) -> None:
        """The references just made (numbers and db_names, in order), after all earlier ones."""

    def pending_changed(self, numbers: tuple[int, ...]) -> None:
        """The numbers still awaited (``add_number``), in the order they were added."""

    def follow_failed(self, error: RedisError) -> None:
        """Redis failed while following the pending numbers."""


class _Running(Protocol):
    """What the context needs of the running ``Sequence`` (which it must not import)."""

    def _add_scan(self, scan: Scan) -> None: ...
    def _add_node(self, node: ScanNode | str, scan_nb: int | None, ended: bool | None
                  ) -> None: ...
    def _add_number(self, number: int, facts: ScanFacts | None) -> None: ...
    def wait_pending(self, timeout: float | None) -> bool: ...


class SequenceContext:
    """What ``sequence_context()`` yields: add scans to the running sequence."""

    def __init__(self, sequence: _Running) -> None:
        self._sequence = sequence

    def add(self, scan: Scan) -> None:
        """Add a Scan object: published now if it started, otherwise as soon as it starts."""
        self._sequence._add_scan(scan)

    def add_and_run(self, scan: Scan) -> None:
        """Add a scan that has not run yet, then run it here (blocking)."""
        if scan.state != ScanState.IDLE:
            raise ScanSequenceError(
                f'Error in  add_and_run: scan "{scan.name}" has already been started before!'
            )
        self.add(scan)
        scan.run()

    def add_node(self, node: ScanNode | str, scan_nb: int | None = None,
                 ended: bool | None = None) -> None:
        """Add an existing scan node (a ``ScanNode`` from the reader), or in a bliss2 session an
        existing scan's key (``esrf:scan:...``): published now.

        ``scan_nb``, ``ended``: its number and whether it ended, when the caller has read them
        already (saves round trips)."""
        self._sequence._add_node(node, scan_nb, ended)

    def add_number(self, number: int, facts: ScanFacts | None = None) -> None:
        """Add scan ``number`` of the session's scan-saving container (bliss2: of the session's
        scans), which another process writes: published now if it is prepared, otherwise as
        soon as it is. ``facts`` (bliss1): what a lookup just found of it (None: not registered
        yet)."""
        self._sequence._add_number(number, facts)

    def wait_all_subscans(self, timeout: float | None = None) -> bool:
        """Wait until every added scan started (was published); False on timeout."""
        return self._sequence.wait_pending(timeout)
