"""Sequences and groups of scans (Bliss's ``bliss.scanning.group``), written to Redis live.

A ``Sequence`` is a ``scan_group`` node whose ``GroupingMaster`` publishes one ``scan_numbers`` and
one ``scans`` reference per sub-scan, plus optional custom channels::

    seq = Sequence(title="my_sequence")
    seq.add_custom_channel(AcquisitionChannel("sum", float, ()))
    with seq.sequence_context() as scan_seq:
        s1 = loopscan(5, .1, diode, run=False)
        scan_seq.add(s1)          # published when s1 starts: listeners follow it live
        s1.run()
        scan_seq.add(loopscan(3, .2, diode))   # already run: published at once
        seq.custom_channels["sum"].emit(s1.get_data()[diode])

A sub-scan added before it runs gets ``scan_info["group"]`` (Flint follows it); it is referenced the
moment it reaches STARTING (node, channels and PREPARED already written), from the thread running
it. ``Group(*scans)`` bundles scans that already ran (Scan objects, scan nodes or scan numbers).

Services drive the same object without a ``with`` block: ``start()`` returns the context,
``end(state=None)`` does what leaving the block does. Bliss's error messages are kept verbatim.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Sequence as Items
from typing import Any

from ..data import encoding, keys, lookup
from ..data.writer import ChannelSpec, GroupWriter
from ..session import Session, get_current_session
from .chain import AcquisitionChannel
from .scan import Scan, ScanState, start_info

__all__ = [
    "Group",
    "ScanSequenceError",
    "Sequence",
    "SequenceContext",
    "find_scan_node",
    "scans_not_finished",
]


class ScanSequenceError(RuntimeError):
    """A sequence or group could not be built as asked (Bliss's messages)."""


def scans_not_finished(title: str) -> ScanSequenceError:
    """Bliss's error for a sequence ended while some added scans had not started."""
    return ScanSequenceError(
        f'Some scans of the sequence "{title}" have not finished before exiting the sequence '
        "context"
    )


def find_scan_node(session: Session, scan_number: int):
    """The scan node numbered ``scan_number`` in the session's scan-saving container.

    As in Bliss: only nodes of type ``scan`` are candidates (not groups); expired scans are not
    found; a shadow scan (``_N_ct``) with that number matches too. Raises ``ScanSequenceError``
    when there is none, or when its info cannot be read safely.
    """
    from ..data.node import get_node

    try:
        facts = lookup.find_scan(session.client, session.scan_saving_db_name, scan_number)
    except lookup.UnreadableScan as error:
        raise ScanSequenceError(f"Scan number '{scan_number}' cannot be added: {error}") from None
    node = get_node(facts.db_name, connection=session.client) if facts else None
    if node is None:
        raise ScanSequenceError(f"Scan number '{scan_number}' not found")
    return node


class SequenceContext:
    """What ``sequence_context()`` yields: add scans to the running sequence."""

    def __init__(self, sequence: Sequence) -> None:
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

    def add_node(self, node: Any, scan_nb: int | None = None) -> None:
        """Add an existing scan node (a ``ScanNode`` from the reader): published now.

        ``scan_nb``: its number, when the caller has read it already (saves a round trip)."""
        self._sequence._add_node(node, scan_nb)

    def wait_all_subscans(self, timeout: float | None = None) -> bool:
        """Wait until every added scan started (was published); False on timeout."""
        return self._sequence._wait_pending(timeout)


class Sequence:
    """A live sequence of scans with optional custom channels (see the module docstring)."""

    default_title = "sequence_of_scans"

    def __init__(self, scan_info: Mapping[str, Any] | None = None, title: str | None = None, *,
                 session: Session | None = None) -> None:
        self.session = session or get_current_session()
        self.title = title or self.default_title
        self._scan_info: dict[str, Any] = {**(scan_info or {}), "is-scan-sequence": True}
        self.custom_channels: dict[str, AcquisitionChannel] = {}
        self.scans: list[Any] = []  # Scan objects and scan nodes, in add order
        self._group: GroupWriter | None = None
        self._state = ScanState.IDLE
        self._pending: set[Scan] = set()
        self._published: set[str] = set()
        self._closed = False
        self._unfinished: list[Scan] = []
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
        return self._group.db_name if self._group else None

    @property
    def scan_nb(self) -> int | None:
        return self._group.scan_nb if self._group else None

    @property
    def node(self):
        """The sequence's ``GroupScanNode`` (reader), once started."""
        from ..data.node import get_node

        return get_node(self.db_name, connection=self.session.client) if self._group else None

    @property
    def published(self) -> int:
        """How many scans have been referenced in Redis so far."""
        return len(self._published)

    # -- building ----------------------------------------------------------------------------
    def add_custom_channel(self, channel: AcquisitionChannel) -> None:
        """Declare an extra channel of the sequence (before it starts)."""
        if self._group is not None:
            raise ScanSequenceError("custom channels must be added before the sequence starts")
        fullname = channel.name
        if fullname in (keys.SCANS_CHANNEL, keys.SCAN_NUMBERS_CHANNEL):
            fullname = f"{keys.GROUPING_MASTER}:{fullname}"  # Bliss's channel-name uniquifier
        if fullname in self.custom_channels or any(
                c.short_name == channel.short_name for c in self.custom_channels.values()):
            raise ScanSequenceError(f"a custom channel named {channel.name!r} already exists")
        keys.check_local_name(channel.short_name)
        self.custom_channels[fullname] = channel

    def _channel_specs(self) -> list[ChannelSpec]:
        custom = [ChannelSpec((), c.short_name, c.dtype, c.shape, c.unit, fullname=name)
                  for name, c in self.custom_channels.items()]
        return GroupWriter.channel_specs(custom)

    def start(self, on_created: Callable[[str], None] | None = None) -> SequenceContext:
        """Create the scan_group node with its channels and publish PREPARED (one sequence once).

        ``on_created(db_name)`` runs between the two (a service records what it runs there).
        When a step fails after the node was created, the node is ended as KILLED (so that no
        reader waits for it) and ``RuntimeError`` is raised from the failure.
        """
        if self._group is not None:
            raise ScanSequenceError(f'the sequence "{self.title}" has already been started')
        specs = self._channel_specs()
        info = start_info({"title": self.title, "npoints": 0, **self._scan_info}, self.session,
                          specs)
        node_name = self.title.replace(":", "_").replace(" ", "_") or self.default_title
        try:
            self._group = self.session.writer.create_scan(
                self.session.scan_saving_parent, node_name, info, node_type="scan_group",
                channels=specs, writer_class=GroupWriter)
            if on_created is not None:
                on_created(self._group.db_name)
            self._group.prepared({})
        except Exception as error:
            if self._group is not None:
                with contextlib.suppress(Exception):  # Redis may be gone: the error says why
                    self._group.end({}, ScanState.KILLED.name, str(type(error)))
                self._state = ScanState.KILLED
            raise RuntimeError("Failed to prepare scan sequence") from error
        self._state = ScanState.STARTING
        self._bind_channels()
        return SequenceContext(self)

    @classmethod
    def reopen(cls, db_name: str, channels: Items[AcquisitionChannel] = (), *,
               session: Session | None = None) -> Sequence:
        """The sequence ``db_name`` as another process left it without END (same custom
        channels), to add scans and points (when it is STARTING) or end it from here. Raises
        ``ScanSequenceError`` when it is not a sequence without END, or its info cannot be read
        safely."""
        from ..data.node import get_node

        session = session or get_current_session()
        node = get_node(db_name, connection=session.client)
        if node is None or node.type != "scan_group":
            raise ScanSequenceError(f"{db_name} is not a sequence in Redis")
        try:
            info = node.info.get_all()
        except (encoding.UnsafePickleError, ValueError) as error:
            raise ScanSequenceError(f"{db_name}: {error}") from None
        state = info.get("state")
        if state not in (ScanState.PREPARING.name, ScanState.STARTING.name) or lookup.scan_facts(
                session.client, db_name).ended:
            raise ScanSequenceError(f"{db_name} has ended (state {state})")
        sequence = cls(title=info.get("title"), session=session)
        for channel in channels:
            sequence.add_custom_channel(channel)
        sequence._group = GroupWriter(session.writer, db_name, info)
        sequence._group.attach_channels(sequence._channel_specs())
        sequence._state = ScanState[state]
        sequence.resync()
        sequence._bind_channels()
        return sequence

    def resync(self) -> dict[str, Any]:
        """Re-read what Redis holds of every channel and continue from there (after a write whose
        outcome is unknown: a request that timed out may have landed). Returns the points found
        beyond what this object knew, by channel fullname (``scans``: db_names)."""
        from ..data.node import get_nodes

        if self._group is None or self._group.ended:
            raise ScanSequenceError(f'the sequence "{self.title}" is not running')
        found = {}
        for name, channel in self._group.channels.items():
            known = channel.length
            if channel.resync() > known:
                found[name] = channel.read(known)
        names = [str(db_name) for db_name in found.get(keys.SCANS_CHANNEL, ())]
        with self._changed:
            self._published.update(names)
            self.scans.extend(n for n in get_nodes(*names, connection=self.session.client) if n)
        return found

    def _bind_channels(self) -> None:
        for name, channel in self.custom_channels.items():
            channel.bind(self._group.channels[name])

    @property
    def ending(self) -> bool:
        """An ``end`` was attempted and failed: no more scans, ``end`` may be called again."""
        return self._closed and self._group is not None and not self._group.ended

    @property
    def writer(self) -> GroupWriter | None:
        """The writer of the sequence's node (None before it started)."""
        return self._group

    @contextlib.contextmanager
    def sequence_context(self) -> Iterator[SequenceContext]:
        """Run the sequence for the duration of the ``with`` block (see the module docstring).

        An exception in the block ends the sequence as KILLED (a Ctrl-C: USER_ABORTED)."""
        context = self.start()
        try:
            yield context
        except BaseException as error:
            with contextlib.suppress(Exception):  # the error of the block is the one to see
                self.end(ScanState.USER_ABORTED if isinstance(error, KeyboardInterrupt)
                         else ScanState.KILLED)
            raise
        self.end()

    # -- adding scans ------------------------------------------------------------------------
    def _require_running(self) -> GroupWriter:
        if self._group is None or self._closed:
            raise ScanSequenceError(f'the sequence "{self.title}" is not running')
        return self._group

    def _publish(self, db_name: str, scan_nb: int) -> None:
        with self._changed:
            if db_name in self._published:
                return
            self._require_running().publish_scan(db_name, scan_nb)
            self._published.add(db_name)
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
            self._pending.add(scan)
        scan.add_state_listener(self._on_scan_state)
        if scan.state >= ScanState.STARTING:  # started while the listener was being added
            self._on_scan_state(scan, scan.state)

    def _on_scan_state(self, scan: Scan, state: ScanState) -> None:
        if state < ScanState.STARTING:
            return
        scan.remove_state_listener(self._on_scan_state)
        with self._changed:
            if scan not in self._pending:
                return
            self._pending.discard(scan)
            if not self._closed:
                self._publish(scan.db_name, scan.scan_number)

    def _add_node(self, node: Any, scan_nb: int | None = None) -> None:
        from ..data.node import ScanNode

        if not isinstance(node, ScanNode) or node.type not in keys.SCAN_TYPES:
            raise ScanSequenceError("Only scans can be added to group")
        with self._changed:
            self._require_running()
            self.scans.append(node)
            self._publish(node.db_name,
                          int(node.info["scan_nb"]) if scan_nb is None else scan_nb)

    def _wait_pending(self, timeout: float | None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending, timeout)

    # -- ending ------------------------------------------------------------------------------
    def _aggregated_state(self) -> ScanState:
        """Bliss's StatePreset: a KILLED, else USER_ABORTED sub-scan sets the sequence's state.

        A scan node whose state cannot be read (expired, or refused by the allow-list) counts as
        DONE: it can no longer change how the sequence ended."""
        states = [ScanState.DONE]
        for scan in self.scans:
            if isinstance(scan, Scan):
                states.append(scan.state)
                continue
            try:
                facts = lookup.scan_facts(self.session.client, scan.db_name)
            except lookup.UnreadableScan:
                continue
            if facts is not None and facts.state in ScanState.__members__:
                states.append(ScanState[facts.state])
        worst = max(states)
        return worst if worst in (ScanState.KILLED, ScanState.USER_ABORTED) else ScanState.DONE

    def end(self, state: ScanState | None = None) -> ScanState:
        """End the sequence in Redis (what leaving ``sequence_context`` does); returns its state.

        ``state`` forces the final state (e.g. USER_ABORTED for an abort); otherwise the sub-scans'
        states decide. Scans added but never started are dropped, and ``ScanSequenceError`` is
        raised after the sequence has been ended. When the write fails (Redis unreachable), the
        sequence takes no more scans and ``end`` can be called again.
        """
        group = self._group
        if group is None or group.ended:
            raise ScanSequenceError(f'the sequence "{self.title}" is not running')
        with self._changed:
            self._closed = True
            unfinished = list(self._pending)
            self._unfinished.extend(unfinished)
            self._pending.clear()
            self._changed.notify_all()
        for scan in unfinished:
            scan.remove_state_listener(self._on_scan_state)
        final = state if state is not None else self._aggregated_state()
        self._end_attempted, retry = True, self._end_attempted
        final = ScanState[group.end({}, final.name, once=retry)]
        self._state = final
        for channel in self.custom_channels.values():
            channel.bind(None)
        if self._unfinished:
            raise scans_not_finished(self.title)
        return final


class Group(Sequence):
    """Bundle scans that already ran: ``Group(s1, s2)``, ``Group(node)``, ``Group(55, 56)``.

    Every argument is checked before anything is written: a refused group leaves nothing in
    Redis (and a group that fails half-way because Redis went away is ended as KILLED)."""

    default_title = "group_of_scans"

    def __init__(self, *scans: Any, title: str | None = None,
                 scan_info: Mapping[str, Any] | None = None, session: Session | None = None
                 ) -> None:
        super().__init__(scan_info=scan_info, title=title, session=session)
        members = [self._member(scan) for scan in scans]
        with self.sequence_context() as context:
            for scan, number in members:
                if isinstance(scan, Scan):
                    context.add(scan)
                else:
                    context.add_node(scan, number)

    def _member(self, scan: Any) -> tuple[Any, int | None]:
        """A scan to group, checked: (Scan object or scan node, its number for nodes)."""
        from ..data.node import ScanNode

        if isinstance(scan, Scan):
            if scan.state < ScanState.STARTING:
                raise ScanSequenceError(
                    "Only scans that have been run before can be added to group")
            return scan, None
        if isinstance(scan, int) and not isinstance(scan, bool):
            scan = find_scan_node(self.session, scan)
        if not isinstance(scan, ScanNode):
            raise ScanSequenceError(f"Invalid argument: no scan node corresponds to {scan}")
        try:
            facts = lookup.scan_facts(scan.connection, scan.db_name)
        except lookup.UnreadableScan as error:
            raise ScanSequenceError(f"{scan.db_name} cannot be added: {error}") from None
        if facts is None or not facts.is_scan:
            raise ScanSequenceError("Only scans can be added to group")
        return scan, facts.number
