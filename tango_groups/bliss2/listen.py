"""``tango-groups listen --data-format bliss2``: the Bliss 2 scans of a session, or one sequence,
one line per event, through blissdata 2.4.5's public reader API only (``DataStore``,
``search_existing_scans``, ``get_next_scan``, ``load_scan``, ``Scan.update``, ``CursorGroup``,
the ``scan_sequence`` plugin for sub-scans).

Lines, shaped like the Bliss 1.x ones of ``tango_groups.cli.formatting`` (event, where, what)::

    CREATED esrf:scan:01K... 1 sequence_of_scans        a state: STATE key number name
    STARTED esrf:scan:01K... 1 sequence_of_scans        (PREPARED, STOPPED alike)
    NEW_DATA esrf:scan:01K... GroupingMaster:SUBSCANS 2 esrf:scan:01K...
                                                        a sub-scan of a sequence: number, key
    NEW_DATA esrf:scan:01K... custom_channels:sum points 0..4
                                                        points of another stream of a sequence
    CLOSED esrf:scan:01K... 1 sequence_of_scans SUCCESS  with its info's end_reason, when set

Sequences (``info["is_scan_sequence"]``) show their streams' data; other scans their states only
(as 1.x ``listen`` shows scan nodes, not their channels). What cannot be read (a scan deleted, a
sub-scan gone) is noted as ``(unreadable: ...)``; the rest goes on.

Order. blissdata keeps a scan's current state only, not its past ones, and ``update()`` jumps to
the newest state: a scan found already under way shows CREATED, then the state it is in (the
states in between are not known), and a live one the states seen. Stream data flows between
STARTED and STOPPED (``stop()`` and ``close()`` seal the streams before the state is written), so
a state up to STARTED is written before the data read with it, STOPPED and CLOSED after every
point the sealed streams hold. The replay (what the session holds when listen starts) goes scan
by scan in creation order (keys are ULIDs), each scan's own lines in order; live, each open scan
has a thread and lines of different scans come as they are seen. A sub-scan a sequence references
is shown (CREATED...) before the reference, if it was not yet: created before referenced.
``load_scan`` in blissdata 2.4.5 reads the JSON document before the state, so a scan found
PREPARED or later is loaded again (``load``): the document is then at least as recent as that
state (its streams, its end_reason).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from blissdata.exceptions import EndOfStream, NoScanAvailable, ScanNotFoundError
from blissdata.redis_engine.scan import Scan, ScanState
from blissdata.redis_engine.store import DataStore
from blissdata.streams import CursorGroup

__all__ = ["ScanFollower", "follow_sequence", "follow_session", "load"]

STEP = 0.2  # seconds a follower waits for one source before looking at the other (state, data)
NEW_SCANS_WAIT = 1.0  # seconds one wait for the session's next scan may block


def load(store: DataStore, key: str) -> Scan:
    """``store.load_scan(key)``, loaded again when found PREPARED or later (see the module)."""
    scan = store.load_scan(key)
    return store.load_scan(key) if scan.state >= ScanState.PREPARED else scan


def is_sequence(scan: Scan) -> bool:
    return bool(scan.info.get("is_scan_sequence"))


class ScanFollower:
    """One scan's lines: ``catch_up()`` for what it holds when found, then ``step()`` until
    ``closed``. ``with_data``: its streams' data too (default: for sequences)."""

    def __init__(self, store: DataStore, key: str, write: Callable[[str], None],
                 with_data: bool | None = None,
                 on_subscan: Callable[[str], None] | None = None) -> None:
        self.key = key
        self.write = write
        self.on_subscan = on_subscan  # called with a sub-scan's key before its reference's line
        self.scan = load(store, key)
        self.with_data = is_sequence(self.scan) if with_data is None else with_data
        self.cursors: CursorGroup | None = None  # None: not opened yet, or read to the end
        self.opened = False
        self.shown: ScanState | None = None
        self.lines = 0

    @property
    def closed(self) -> bool:
        return self.shown is ScanState.CLOSED

    def catch_up(self) -> None:
        """CREATED, then the state the scan is in and the data it holds (see the module)."""
        self._state_line(ScanState.CREATED)
        self._advance({})

    def step(self, timeout: float = STEP) -> None:
        """Wait up to ``timeout`` for a new state or new data, and write their lines."""
        if self.cursors is None:
            self.scan.update(timeout=timeout)
            views: dict[Any, Any] = {}
        else:
            views = self._read(timeout)
            self.scan.update(block=False)
        self._advance(views)

    def follow(self) -> None:
        """``step()`` until CLOSED; what cannot be read ends it with an ``(unreadable)`` line."""
        try:
            while not self.closed:
                self.step()
        except (ScanNotFoundError, RuntimeError) as error:  # deleted; a broken document
            self._write(f"{self.key} (unreadable: {error})")

    def _advance(self, views: dict[Any, Any]) -> None:
        state = self.scan.state
        if state <= ScanState.STARTED:
            self._state_line(state)
        self._data_lines(views)
        if self.with_data and not self.opened and state >= ScanState.PREPARED:
            self.opened = True  # the streams are all in the PREPARED document
            self.cursors = CursorGroup(self.scan.streams)
            self._data_lines(self._read(None))
        if state >= ScanState.STOPPED:
            while self.cursors is not None:  # sealed: everything they hold comes first
                views = self._read(None)
                if not views:
                    break
                self._data_lines(views)
            self._state_line(state)

    def _read(self, timeout: float | None) -> dict[Any, Any]:
        """New data of the cursors (``timeout`` None: what is there now); {} at the end."""
        assert self.cursors is not None
        try:
            if timeout is None:
                return self.cursors.read(block=False)
            return self.cursors.read(timeout=timeout)
        except EndOfStream:
            self.cursors = None
            return {}

    def _state_line(self, state: ScanState) -> None:
        if state is self.shown:
            return
        words = [state.name, self.key, str(self.scan.number), str(self.scan.name)]
        reason = self.scan.info.get("end_reason") if state is ScanState.CLOSED else None
        self._write(" ".join(words + ([str(reason)] if reason else [])))
        self.shown = state

    def _data_lines(self, views: dict[Any, Any]) -> None:
        for stream, view in views.items():
            where = f"NEW_DATA {self.key} {stream.name}"
            if stream.kind != "scan":
                self._write(f"{where} points {view.index}..{view.last_index}")
                continue
            for index in range(len(view)):  # the scan_sequence plugin loads each sub-scan
                try:
                    sub = view.get_data(index, index + 1)[0]
                    if self.on_subscan is not None:
                        self.on_subscan(sub.key)
                    self._write(f"{where} {sub.number} {sub.key}")
                except (ScanNotFoundError, RuntimeError) as error:
                    self._write(f"{where} (unreadable: {error})")

    def _write(self, line: str) -> None:
        self.lines += 1
        self.write(line)


def follow_sequence(store: DataStore, key: str, write: Callable[[str], None],
                    replayed: Callable[[int], None]) -> None:
    """The lines of sequence ``key`` until it is CLOSED (``replayed(n)`` after the replay)."""
    try:
        follower = ScanFollower(store, key, write, with_data=True)
    except ScanNotFoundError:
        raise RuntimeError(f"no scan {key!r} here: give a sequence's key, as listen prints "
                           "them (esrf:scan:...)") from None
    if not is_sequence(follower.scan):
        raise RuntimeError(f"{key!r} is a scan, not a sequence (no is_scan_sequence in its info)")
    follower.catch_up()
    if not follower.closed:
        replayed(follower.lines)
        follower.follow()


def follow_session(store: DataStore, session: str, write: Callable[[str], None],
                   replayed: Callable[[int], None]) -> None:
    """The lines of every scan of ``session``: the replay, ``replayed(n)`` (n scans), then
    live, until interrupted (one thread per open scan; this one waits for new scans)."""
    listener = _SessionListener(store, session, write)
    since, keys = store.search_existing_scans(session=session)
    for key in sorted(keys):  # ULIDs: creation order
        listener.found(key)
    replayed(len(listener.known))
    listener.go_live()
    while True:
        try:
            since, key = store.get_next_scan(since=since, timeout=NEW_SCANS_WAIT)
        except NoScanAvailable:
            continue
        listener.found(key)


class _SessionListener:
    """The scans of one session, each shown once: found by the replay, as a new scan, or as a
    sequence's sub-scan (then its lines come before the reference's: created, then referenced).
    """

    def __init__(self, store: DataStore, session: str, write: Callable[[str], None]) -> None:
        self.store = store
        self.session = session
        self._write = write
        self._output = threading.Lock()  # one line at a time
        self._finding = threading.RLock()  # a sequence's catch-up finds its sub-scans
        self.known: set[str] = set()
        self.waiting: list[ScanFollower] | None = []  # open scans of the replay; None: live

    def write(self, line: str) -> None:
        with self._output:
            self._write(line)

    def found(self, key: str) -> None:
        """Show a scan of the session not shown yet, and follow it while it is open."""
        with self._finding:
            if key in self.known:
                return
            self.known.add(key)
            try:
                follower = ScanFollower(self.store, key, self.write, on_subscan=self.found)
            except (ScanNotFoundError, RuntimeError):  # deleted already; not a blissdata 2 scan
                return
            if follower.scan.session != self.session:
                return
            follower.catch_up()
            if follower.closed:
                return
            if self.waiting is None:
                _start(follower)
            else:
                self.waiting.append(follower)

    def go_live(self) -> None:
        with self._finding:
            waiting, self.waiting = self.waiting or [], None
        for follower in waiting:
            _start(follower)


def _start(follower: ScanFollower) -> None:
    threading.Thread(target=follower.follow, name=follower.key, daemon=True).start()
