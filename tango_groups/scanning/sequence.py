"""``Sequence``: a live sequence of scans (Bliss's ``bliss.scanning.group.Sequence``).

In a bliss1 session a sequence is a ``scan_group`` node whose ``GroupingMaster`` publishes one
``scan_numbers`` and one ``scans`` reference per sub-scan, plus optional custom channels; in a
bliss2 one a sequence scan (``tango_groups.bliss2``). The rules here are the same in both; what
differs is asked of the session's model (``scanning.model.DataModel``)::

    seq = Sequence(title="my_sequence")
    seq.add_custom_channel(AcquisitionChannel("sum", float, ()))
    with seq.sequence_context() as scan_seq:
        s1 = loopscan(5, .1, diode, run=False)
        scan_seq.add(s1)          # published when s1 starts: listeners follow it live
        s1.run()
        scan_seq.add(loopscan(3, .2, diode))   # already run: published at once
        seq.custom_channels["sum"].emit(s1.get_data()[diode])

Scans the sequence waits for (*pending*) are of two kinds, kept in one place: ``Scan`` objects of
this process added before they run (``scan_info["group"]`` is set so that Flint follows them;
referenced from the thread running them when they reach STARTING) and scan numbers of the
scan-saving container (bliss2: of the session) written by another process (``add_number``;
followed in Redis by the model, ``tango_groups.bliss1.pending`` or ``bliss2.pending``, and
referenced when PREPARED). ``wait_all_subscans``
waits for both; ``end`` drops what never started and raises Bliss's error after ending the
sequence.

Services drive the same object without a ``with`` block (``start()``, then ``end()``) and give
it a ``SequenceListener``. Bliss's error messages are kept verbatim.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Sequence as Items
from typing import Any

from ..bliss1 import keys
from ..bliss1.lookup import ScanFacts
from ..bliss1.node import DataNode, ScanNode
from ..bliss1.writer import ChannelNode
from ..data.channel import ChannelSpec
from ..data.connection import Redis
from ..session import Session, get_current_session
from .chain import AcquisitionChannel
from .context import ScanSequenceError, SequenceContext, SequenceListener, scans_not_finished
from .context import aggregated_state as aggregated
from .model import PendingNumbers, SequenceOut
from .scan import Scan, ScanState, start_info

__all__ = ["ScanSequenceError", "Sequence", "SequenceContext", "SequenceListener",
           "scans_not_finished"]


class Sequence:
    """A live sequence of scans with optional custom channels (see the module docstring).

    ``listener`` (services): told of every reference and pending change; ``watch_client``: the
    Redis client that follows pending numbers (its socket timeout must exceed the walks' block
    time; default the session's client)."""

    default_title = "sequence_of_scans"

    def __init__(self, scan_info: Mapping[str, Any] | None = None, title: str | None = None, *,
                 session: Session | None = None, listener: SequenceListener | None = None,
                 watch_client: Redis | None = None) -> None:
        self.session = session or get_current_session()
        self.title = title or self.default_title
        self._scan_info: dict[str, Any] = {**(scan_info or {}), "is-scan-sequence": True}
        self.custom_channels: dict[str, AcquisitionChannel] = {}
        self.scans: list[Any] = []  # Scan objects and scan nodes, in add order
        self.scan_numbers: list[int] = []  # what is referenced in Redis, in order
        self.scan_names: list[str] = []
        self._referenced: set[str | int] = set()  # scan_names and scan_numbers, for lookups
        self._listener = listener or SequenceListener()
        self._watch_client = watch_client or self.session.client
        self._numbers: PendingNumbers | None = None  # the model's, from the first add_number
        self._group: SequenceOut | None = None
        self._state = ScanState.IDLE
        self._pending: dict[Scan | int, None] = {}  # insertion-ordered
        self._closed = False
        self.unfinished: list[Scan | int] = []  # what end() dropped: it never started
        self.recovered: dict[str, Any] = {}  # what reopen() found in Redis, as resync() says
        self._end_attempted = False  # a failed attempt may have landed: check before retrying
        self._changed = threading.Condition(threading.RLock())

    # -- what a user reads -------------------------------------------------------------------
    @property
    def state(self) -> ScanState:
        return self._state

    @property
    def scan_info(self) -> dict[str, Any]:
        return dict(self._group.info) if self._group else dict(self._scan_info)

    @property
    def db_name(self) -> str | None:
        """Its node's db_name (bliss1), its sequence scan's key (bliss2), once started."""
        return self._group.db_name if self._group else None

    key = db_name

    @property
    def scan_nb(self) -> int | None:
        return self._group.scan_nb if self._group else None

    @property
    def node(self) -> DataNode | None:
        """The sequence's ``GroupScanNode`` (reader), once started (bliss1; None in bliss2)."""
        return None if self._group is None else self.session.model.node(self._group.db_name)

    @property
    def published(self) -> int:
        """How many scans have been referenced in Redis so far."""
        return len(self.scan_names)

    def references(self, scan: str | int) -> bool:
        """Whether a scan (db_name or number) is referenced in Redis already."""
        return scan in self._referenced

    @property
    def pending_numbers(self) -> tuple[int, ...]:
        """Scan numbers added with ``add_number`` and not referenced yet."""
        return tuple(key for key in self._pending if isinstance(key, int))

    @property
    def writer(self) -> SequenceOut | None:
        """The writer of the sequence (its node's in bliss1; None before it started)."""
        return self._group

    # -- building ----------------------------------------------------------------------------
    @staticmethod
    def channel_fullname(name: str) -> str:
        """A custom channel's fullname in the sequence (Bliss renames the two reserved names)."""
        if name in (keys.SCANS_CHANNEL, keys.SCAN_NUMBERS_CHANNEL):
            return f"{keys.GROUPING_MASTER}:{name}"  # Bliss's channel-name uniquifier
        return name

    def add_custom_channel(self, channel: AcquisitionChannel) -> None:
        """Declare an extra channel of the sequence (before it starts)."""
        if self._group is not None:
            raise ScanSequenceError("custom channels must be added before the sequence starts")
        fullname = self.channel_fullname(channel.name)
        if fullname in self.custom_channels or any(
                c.short_name == channel.short_name for c in self.custom_channels.values()):
            raise ScanSequenceError(f"a custom channel named {channel.name!r} already exists")
        keys.check_local_name(channel.short_name)
        self.custom_channels[fullname] = channel

    def _channel_specs(self) -> list[ChannelSpec]:
        """The sequence's custom channels, by fullname."""
        return [ChannelSpec(name, c.dtype, c.shape, c.unit)
                for name, c in self.custom_channels.items()]

    def start(self, on_created: Callable[[str], None] | None = None) -> SequenceContext:
        """Create the scan_group node with its channels and publish PREPARED (one sequence once).

        ``on_created(db_name)`` runs between the two (a service records what it runs there).
        When a step fails after the node was created, the node is ended as KILLED (so that no
        reader waits for it) and the failure is raised.
        """
        if self._group is not None:
            raise ScanSequenceError(f'the sequence "{self.title}" has already been started')
        specs = self._channel_specs()
        described = self.session.model.sequence_channels([ChannelNode.at((), spec)
                                                          for spec in specs])
        info = start_info({"title": self.title, "npoints": 0, **self._scan_info}, self.session,
                          described)
        node_name = self.title.replace(":", "_").replace(" ", "_") or self.default_title
        try:
            self._group = self.session.model.create_sequence(node_name, info, specs)
            if on_created is not None:
                on_created(self._group.db_name)
            self._group.prepared({})
        except Exception as error:
            if self._group is not None:
                with contextlib.suppress(Exception):  # Redis may be gone: the error says why
                    self._group.end({}, ScanState.KILLED.name, str(type(error)))
                self._state = ScanState.KILLED
            raise
        self._state = ScanState.STARTING
        self._bind_channels()
        return SequenceContext(self)

    @classmethod
    def reopen(cls, db_name: str, channels: Items[AcquisitionChannel] = (), *,
               session: Session | None = None, listener: SequenceListener | None = None,
               watch_client: Redis | None = None) -> Sequence:
        """The sequence ``db_name`` as another process left it without END (same custom
        channels), to add scans and points (when it is STARTING) or end it from here (bliss1: a
        ``scan_group`` node's db_name; bliss2: a STARTED sequence scan's ``esrf:scan:`` key,
        of this session). Raises ``ScanSequenceError`` when it is not a sequence without END,
        or its info cannot be read safely."""
        session = session or get_current_session()
        info = session.model.running_sequence(db_name)
        sequence = cls(title=info.get("title"), session=session, listener=listener,
                       watch_client=watch_client)
        for channel in channels:
            sequence.add_custom_channel(channel)
        sequence._group = session.model.attach_sequence(db_name, info, sequence._channel_specs())
        sequence._state = ScanState[info["state"]]
        sequence.recovered = sequence.resync()
        sequence._bind_channels()
        return sequence

    def resync(self) -> dict[str, Any]:
        """Re-read what Redis holds of every channel and continue from there (after a write whose
        outcome is unknown: a request that timed out may have landed), and follow the pending
        numbers again. Returns the points found beyond what this object knew, by channel
        fullname (``scans``: db_names)."""
        if self._group is None or self._group.ended:
            raise ScanSequenceError(f'the sequence "{self.title}" is not running')
        found = self._group.resync()
        names = [str(db_name) for db_name in found.get(keys.SCANS_CHANNEL, ())]
        with self._changed:
            if names:
                numbers = [int(n) for n in found.get(keys.SCAN_NUMBERS_CHANNEL, ())]
                self.scan_names += names
                self.scan_numbers += numbers
                self._referenced.update(names, numbers)
                self.scans.extend(self.session.model.nodes(names))
                self._listener.scans_published(tuple(numbers), tuple(names))
            if not self._closed and self._numbers is not None:
                self._numbers.restart(self.pending_numbers)
        return found

    def _bind_channels(self) -> None:
        for name, channel in self.custom_channels.items():
            channel.bind(self._group.channels[name])

    @contextlib.contextmanager
    def sequence_context(self) -> Iterator[SequenceContext]:
        """Run the sequence for the duration of the ``with`` block (see the module docstring).

        An exception in the block ends the sequence as KILLED (a Ctrl-C: USER_ABORTED)."""
        try:
            context = self.start()
        except ScanSequenceError:
            raise
        except Exception as error:
            raise RuntimeError("Failed to prepare scan sequence") from error
        try:
            yield context
        except BaseException as error:
            with contextlib.suppress(Exception):  # the error of the block is the one to see
                self.end(ScanState.USER_ABORTED if isinstance(error, KeyboardInterrupt)
                         else ScanState.KILLED)
            raise
        self.end()

    # -- adding scans ------------------------------------------------------------------------
    def _require_running(self) -> SequenceOut:
        if self._group is None or self._closed:
            raise ScanSequenceError(f'the sequence "{self.title}" is not running')
        return self._group

    def _publish(self, db_name: str, scan_nb: int, ended: bool | None = None) -> None:
        with self._changed:
            if db_name in self._referenced:
                return
            self._require_running().publish_scan(db_name, scan_nb, ended)
            self.scan_numbers.append(scan_nb)
            self.scan_names.append(db_name)
            self._referenced.update((db_name, scan_nb))
            self._listener.scans_published((scan_nb,), (db_name,))
            self._changed.notify_all()

    def _await(self, key: Scan | int) -> None:
        self._pending[key] = None
        if isinstance(key, int):
            self._listener.pending_changed(self.pending_numbers)

    def _resolved(self, key: Scan | int) -> None:
        del self._pending[key]
        if isinstance(key, int):
            self._listener.pending_changed(self.pending_numbers)
        self._changed.notify_all()

    def _add_scan(self, scan: Scan) -> None:
        if not isinstance(scan, Scan):
            raise ScanSequenceError(f"Invalid argument: {scan!r} is not a scan")
        with self._changed:
            self._require_running()
            self.scans.append(scan)
            if scan.state >= ScanState.STARTING:
                self._publish(scan.db_name, scan.scan_number)
                return
            scan.scan_info["group"] = self._group.db_name
            self._await(scan)
        scan.add_state_listener(self._on_scan_state)
        if scan.state >= ScanState.STARTING:  # started while the listener was being added
            self._on_scan_state(scan, scan.state)

    def _on_scan_state(self, scan: Scan, state: ScanState) -> None:
        if state < ScanState.STARTING:
            return
        scan.remove_state_listener(self._on_scan_state)
        with self._changed:
            if scan in self._pending and not self._closed:
                self._publish(scan.db_name, scan.scan_number, ended=False)
                self._resolved(scan)

    def _add_node(self, node: ScanNode | str, scan_nb: int | None = None,
                  ended: bool | None = None) -> None:
        name, number = self.session.model.reference(node, scan_nb)
        with self._changed:
            self._require_running()
            self.scans.append(node)
            self._publish(name, number, ended)

    def _add_number(self, number: int, facts: ScanFacts | None) -> None:
        with self._changed:
            if self._numbers is None:  # a model that follows no pending numbers refuses here
                self._numbers = self.session.model.follow_numbers(
                    self._watch_client, self._number_prepared, self._listener.follow_failed)
            self._require_running()
            if number in self._pending:
                raise ScanSequenceError(f"scan {number} is already pending in the sequence")
            self._await(number)
            self._numbers.follow(number, facts)

    def _number_prepared(self, facts: ScanFacts) -> None:
        """A scan of the container reached PREPARED (from a follower, or at once)."""
        with self._changed:
            if facts.number in self._pending and not self._closed:
                if facts.db_name not in self._referenced:
                    self._publish(facts.db_name, facts.number, facts.ended)
                    self.scans.append(facts.node(self.session.client))
                self._resolved(facts.number)

    def abandon(self) -> None:
        """Take no more scans and follow nothing more (its node vanished from Redis)."""
        with self._changed:
            self._closed = True
            if self._numbers is not None:
                self._numbers.stop()
            self._changed.notify_all()

    def wait_pending(self, timeout: float | None) -> bool:
        """Wait until every added scan started (was published); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending, timeout)

    # -- ending ------------------------------------------------------------------------------
    def end(self, state: ScanState | None = None) -> ScanState:
        """End the sequence in Redis (what leaving ``sequence_context`` does); returns its state.

        ``state`` forces the final state (e.g. USER_ABORTED for an abort); otherwise the sub-scans'
        states decide. Scans added but never started are dropped (``unfinished``), and
        ``ScanSequenceError`` is raised after the sequence has been ended. When the write fails
        (Redis unreachable), the sequence takes no more scans and ``end`` can be called again.
        """
        group = self._group
        if group is None or group.ended:
            raise ScanSequenceError(f'the sequence "{self.title}" is not running')
        with self._changed:
            self._closed = True
            if self._numbers is not None:
                self._numbers.stop()
            unfinished = list(self._pending)
            self.unfinished.extend(unfinished)
            self._pending.clear()
            self._changed.notify_all()
        for scan in unfinished:
            if isinstance(scan, Scan):
                scan.remove_state_listener(self._on_scan_state)
        final = state if state is not None else aggregated(self.scans, self.session.client)
        self._end_attempted, retry = True, self._end_attempted
        final = ScanState[group.end({}, final.name, once=retry)]
        self._state = final
        for channel in self.custom_channels.values():
            channel.bind(None)
        if self.unfinished:
            raise scans_not_finished(self.title)
        return final
