"""The fault suite in ``DataFormat bliss2``: the faults of ``test_faults`` (Redis crashed and
restarted with and without its data, frozen past RedisTimeout and past the 3 s Tango client
timeout, the server SIGKILLed and restarted) at the same points of a sequence (``started``,
``scan_added``, ``emitted``, ``pending``), judged by the Bliss 2 semantics
(``tango_groups.service.bliss2_manager``):

* a fault no write meets (Redis down while the device knows it): commands are refused with
  ``RedisUnavailable`` before anything is written, and the sequence goes on once Redis is back;
* a write of the running sequence that fails leaves it LOST (FAULT): commands answer
  ``SequenceLost``, End or Abort closes it (``end_reason`` FAILURE, or USER_ABORT) once Redis
  answers, and Start works again;
* a killed server's sequence is closed by its next start.

After each fault: every call answers within the client's 3 s timeout and State always answers;
every scan the device created is CLOSED with every stream sealed and a blissdata reader's
cursors end (``bliss2_data.problems``); what blissdata reads equals what the device reports
(``ScanNames`` / ``ScanNumbers`` == the ``GroupingMaster:SUBSCANS`` entries, the channel
attribute == the channel's stream); a client's retry never stores a point or a reference twice.

Every test starts its own server and modules Redis (skipped, with the reason, where that Redis
cannot start); waits are polls with deadlines, the only sleep is the length of a Redis pause.
"""

from __future__ import annotations

import functools
import json
import threading
import time

import pytest
import tango

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

import fault_points
from bliss2_data import channel_points, cursors_end, problems, references
from blissdata.exceptions import EndOfStream, ScanNotFoundError
from blissdata.redis_engine.scan import ScanState as Bliss2State
from blissdata.streams import CursorGroup
from fault_points import (
    CHANNEL,
    CLIENT_TIMEOUT_S,
    DETECTION,
    LOST,
    POINTS,
    RECOVERY,
    Expected,
)
from redis_checker import KeySnapshot
from sequence_server import (
    UNAVAILABLE,
    SequenceServer,
    device_view,
    poll,
    refused,
    retried,
    spectrum,
)

from tango_groups.bliss2 import data_store
from tango_groups.scanning.scan import ScanState

END_REASONS = {ScanState.DONE: "SUCCESS", ScanState.USER_ABORTED: "USER_ABORT",
               ScanState.KILLED: "FAILURE"}

pytestmark = pytest.mark.slow  # every test starts a device server and a Redis of its own


def bliss2_server(sequence_server, **properties: object) -> SequenceServer:
    return sequence_server(data_format="bliss2", Channels=[CHANNEL], **properties)


def reach(server: SequenceServer, point: str) -> Expected:
    """Run a sequence up to ``point`` (``fault_points``); checks the device agrees."""
    expected = fault_points.reach(server, point, functools.partial(assert_agree, running=True))
    assert expected.name.startswith("esrf:scan:")
    return expected


def assert_agree(server: SequenceServer, expected: Expected, running: bool,
                 late: tuple[float, ...] = ()) -> None:
    """Device == blissdata == expected; nothing open but the running sequence. ``late``: points
    of a write that failed, which blissdata may hold once after the others (the device then
    shows them too: ``test_points_that_landed_late_are_shown``)."""
    proxy, store = server.proxy, server.store
    assert references(store, expected.name) == (expected.names, expected.numbers)
    stored = channel_points(store, expected.name, CHANNEL).tolist()
    assert stored in (expected.points, expected.points + list(late))  # never twice
    assert proxy.SequenceName == proxy.ScanKey == expected.name
    assert spectrum(proxy, "ScanNames") == expected.names
    assert spectrum(proxy, "ScanNumbers") == expected.numbers
    assert spectrum(proxy, CHANNEL) == stored
    if running:
        assert proxy.State() == tango.DevState.RUNNING, proxy.Status()
        assert spectrum(proxy, "PendingScans") == expected.pending
    assert problems(store, server.session_name,
                    running=expected.name if running else None) == []


def assert_closed(server: SequenceServer, key: str, reason: str) -> None:
    """The sequence is CLOSED with that end reason, every stream sealed, a reader's cursors end."""
    scan = server.store.load_scan(key)
    assert scan.state is Bliss2State.CLOSED
    assert scan.info["end_reason"] == reason
    assert all(stream.is_sealed() for stream in scan.streams.values())
    assert cursors_end(scan)


def run_pending(server: SequenceServer, expected: Expected) -> None:
    """Write the scans of the pending numbers (none may have run before)."""
    for number in expected.pending:
        assert server.last_scan_number() < number, f"scan {number} ran before its time"
        while server.last_scan_number() < number:
            started = server.scan()
        assert started.scan_number == number
        expected.names.append(started.db_name)
        expected.numbers.append(number)
    expected.pending = []


def finish(server: SequenceServer, expected: Expected) -> None:
    """Use the sequence after the fault (spare scan, a point, the pending scan), End it: DONE,
    everything exactly once, CLOSED with every stream sealed."""
    proxy = server.proxy
    if expected.spare not in expected.names:
        assert proxy.AddScan(expected.spare) == expected.spare
        expected.names.append(expected.spare)
        expected.numbers.append(int(server.store.load_scan(expected.spare).number))
    assert proxy.EmitChannel(([9.0], [CHANNEL])) == 1
    expected.points.append(9.0)
    run_pending(server, expected)
    poll(lambda: spectrum(proxy, "ScanNames") == expected.names, DETECTION,
         "the pending scan referenced once it ran",
         lambda: f"{spectrum(proxy, 'ScanNames')}, pending {spectrum(proxy, 'PendingScans')}")
    assert proxy.End() == "DONE"
    assert proxy.SequenceState == ScanState.DONE
    assert_closed(server, expected.name, "SUCCESS")
    assert_agree(server, expected, running=False)


def start_again(server: SequenceServer) -> None:
    """Start works again: a sequence with a new scan and a point, ended DONE, nothing open."""
    proxy = server.proxy
    poll(lambda: proxy.State() == tango.DevState.ON, DETECTION, "ON", lambda: device_view(proxy))
    key = proxy.Start(json.dumps({"title": "after the fault", "channels": [CHANNEL]}))
    scan = server.scan()
    assert proxy.AddScan(scan.db_name) == scan.db_name
    assert proxy.EmitChannel(([4.0], [CHANNEL])) == 1
    assert proxy.End() == "DONE"
    assert references(server.store, key) == ([scan.db_name], [scan.scan_number])
    assert channel_points(server.store, key, CHANNEL).tolist() == [4.0]
    assert_closed(server, key, "SUCCESS")
    assert problems(server.store, server.session_name) == []


class EndWaiter:
    """A blissdata reader in a thread, reading every stream of the sequence until its end and
    waiting for CLOSED (as a Bliss 2 consumer following the sequence does)."""

    def __init__(self, server: SequenceServer, key: str) -> None:
        self.store = data_store(server.redis.url)
        self.scan = self.store.load_scan(key)
        self.ended = threading.Event()
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        try:
            cursors = CursorGroup(self.scan.streams)
            while not self.stopped.is_set():
                try:
                    cursors.read(timeout=0.2)
                except EndOfStream:
                    break
            while not self.stopped.is_set() and self.scan.state < Bliss2State.CLOSED:
                self.scan.update(timeout=0.2)
            self.ended.set()
        except BaseException as error:  # noqa: BLE001 (reported by released())
            self.error = error

    def released(self, timeout: float) -> bool:
        return self.ended.wait(timeout)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.store._redis.close()


def close_lost(server: SequenceServer, expected: Expected, command: str = "End",
               late: tuple[float, ...] = ()) -> None:
    """The sequence is LOST: End (or Abort) answers SequenceLost and closes it (FAILURE or
    USER_ABORT); the device is ON, shows what blissdata reads; Start works again."""
    proxy = server.proxy
    assert "closed now" in refused(LOST, getattr(proxy, command))
    assert proxy.State() == tango.DevState.ON
    final = ScanState.KILLED if command == "End" else ScanState.USER_ABORTED
    assert proxy.SequenceState == final
    assert_closed(server, expected.name, END_REASONS[final])
    expected.pending = []
    assert_agree(server, expected, running=False, late=late)
    start_again(server)


# -- Redis crashed ----------------------------------------------------------------------------------
@pytest.mark.parametrize("point", POINTS)
def test_redis_restarted_with_its_data(sequence_server, point: str) -> None:
    """Down: FAULT, commands refused at once (nothing written), and the running sequence LOST
    (blissdata's stream writers die with their connections: README, "Bliss 2"); back with its
    data: still LOST, EmitChannel answers SequenceLost storing nothing, End closes the sequence
    with what it held (FAILURE) and Start works again."""
    server = bliss2_server(sequence_server)
    proxy = server.proxy
    expected = reach(server, point)
    server.redis.crash(keep_data=True)
    poll(lambda: proxy.State() == tango.DevState.FAULT, DETECTION, "FAULT while Redis is down",
         lambda: device_view(proxy))
    refused(UNAVAILABLE, lambda: proxy.EmitChannel(([3.0], [CHANNEL])))
    server.redis.start()
    poll(lambda: proxy.Status().startswith("Sequence "),  # not "Redis ... is unreachable"
         DETECTION, "the LOST status once Redis is back", lambda: device_view(proxy))
    assert proxy.State() == tango.DevState.FAULT
    refused(LOST, lambda: proxy.EmitChannel(([3.0], [CHANNEL])))
    assert channel_points(server.store, expected.name, CHANNEL).tolist() == expected.points
    close_lost(server, expected)


@pytest.mark.parametrize(("point", "closer"), [*((point, "End") for point in POINTS),
                                               ("emitted", "Abort")])
def test_redis_restarted_without_its_data(sequence_server, point: str, closer: str) -> None:
    """The sequence is gone: FAULT naming it, SequenceLost for AddScan / EmitChannel (nothing
    written), End / Abort say SequenceLost and clear it (ON); once the db is set up again (as the
    beamline's Bliss does on its empty Redis), Start works."""
    server = bliss2_server(sequence_server)
    proxy = server.proxy
    expected = reach(server, point)
    server.redis.restart(keep_data=False)

    def lost() -> bool:
        status = proxy.Status()
        return proxy.State() == tango.DevState.FAULT and (
            expected.name in status or "lost" in status.lower())

    poll(lost, DETECTION, "FAULT with a Status naming the lost sequence",
         lambda: device_view(proxy))
    server.data_client.close()
    server.store = data_store(server.redis.url)  # Bliss sets up its empty Redis again
    new = [server.scan() for _ in range(max(expected.pending, default=1))]
    before = KeySnapshot.take(server.data_client)
    refused(LOST, lambda: proxy.AddScan(new[0].db_name))
    refused(LOST, lambda: proxy.EmitChannel(([3.0], [CHANNEL])))
    assert KeySnapshot.take(server.data_client).diff(before) == []
    refused(LOST, getattr(proxy, closer))
    poll(lambda: proxy.State() == tango.DevState.ON, DETECTION, "ON once the loss is cleared",
         lambda: device_view(proxy))
    with pytest.raises(ScanNotFoundError):
        server.store.load_scan(expected.name)
    assert problems(server.store, server.session_name) == []
    start_again(server)


# -- Redis frozen -----------------------------------------------------------------------------------
PAUSES = [pytest.param(2.2, id="past_RedisTimeout"), pytest.param(4.0, id="past_client_timeout")]


@pytest.mark.parametrize("pause", PAUSES)
@pytest.mark.parametrize("point", POINTS)
def test_redis_paused_then_resumed(sequence_server, point: str, pause: float) -> None:
    """A frozen Redis meets an EmitChannel: RedisUnavailable within the client timeout, the
    sequence LOST (FAULT); the next commands are refused at once. Resumed: the retried
    EmitChannel answers SequenceLost and stores nothing more; End answers SequenceLost and
    closes it (FAILURE); the device shows what blissdata reads; Start works again."""
    server = bliss2_server(sequence_server)
    proxy = server.proxy
    expected = reach(server, point)
    frozen = time.monotonic()
    with server.redis.paused():
        refused(UNAVAILABLE, lambda: proxy.EmitChannel(([5.0, 6.0], [CHANNEL])))
        poll(lambda: proxy.State() == tango.DevState.FAULT, pause, "FAULT while Redis hangs",
             lambda: device_view(proxy))
        if pause > CLIENT_TIMEOUT_S:
            refused(UNAVAILABLE, lambda: proxy.AddScan(expected.spare))
        time.sleep(max(0.0, frozen + pause - time.monotonic()))  # the fault lasts `pause`
    refused(LOST, lambda: retried(lambda: proxy.EmitChannel(([5.0, 6.0], [CHANNEL]))))
    refused(LOST, lambda: proxy.AddScan(expected.spare))
    close_lost(server, expected, late=(5.0, 6.0))


def test_points_that_landed_late_are_shown(sequence_server) -> None:
    """After the lost sequence is closed, the device's channel attribute == blissdata's stream."""
    server = bliss2_server(sequence_server)
    proxy = server.proxy
    expected = reach(server, "emitted")
    frozen = time.monotonic()
    with server.redis.paused():
        refused(UNAVAILABLE, lambda: proxy.EmitChannel(([5.0, 6.0], [CHANNEL])))
        time.sleep(max(0.0, frozen + 2.2 - time.monotonic()))  # the fault lasts 2.2 s
    refused(LOST, lambda: retried(proxy.End))
    assert spectrum(proxy, CHANNEL) == channel_points(server.store, expected.name,
                                                      CHANNEL).tolist()


# -- End and Abort retried ----------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["crashed", "paused"])
@pytest.mark.parametrize(("command", "final"), [
    ("End", ScanState.DONE), ("Abort", ScanState.USER_ABORTED)], ids=["End", "Abort"])
def test_end_or_abort_retried_once_redis_is_back(sequence_server, fault: str,
                                                 command: str, final: ScanState) -> None:
    """End / Abort that met a failed Redis: refused (RedisUnavailable); retried once Redis
    answers, it closes the sequence once: End's reply and the device's SequenceState say how
    (DONE, or SequenceLost: the failed write left it LOST, KILLED), and blissdata's end_reason
    agrees; nothing open; Start works again."""
    server = bliss2_server(sequence_server)
    proxy = server.proxy
    expected = reach(server, "emitted")
    if fault == "crashed":
        server.redis.crash(keep_data=True)
        refused(UNAVAILABLE, getattr(proxy, command))
        server.redis.start()
    else:
        frozen = time.monotonic()
        with server.redis.paused():
            refused(UNAVAILABLE, getattr(proxy, command))
            time.sleep(max(0.0, frozen + 1.5 - time.monotonic()))  # writes may land on SIGCONT
    try:
        assert retried(getattr(proxy, command)) == final.name
        shown = final
    except tango.DevFailed as error:  # the failed write left the sequence LOST
        assert error.args[0].reason == LOST, error.args[0].desc
        assert "closed now" in error.args[0].desc
        shown = final if command == "Abort" else ScanState.KILLED
    poll(lambda: proxy.State() == tango.DevState.ON, DETECTION, "ON after the retried " + command,
         lambda: device_view(proxy))
    assert proxy.SequenceState == shown
    assert_closed(server, expected.name, END_REASONS[shown])
    assert_agree(server, expected, running=False)
    start_again(server)


# -- the server SIGKILLed ---------------------------------------------------------------------------
@pytest.mark.parametrize(("point", "recovery"), [*((point, "close") for point in POINTS),
                                                 ("emitted", "resume")])
def test_server_killed_then_restarted_closes_the_sequence(sequence_server, point: str,
                                                          recovery: str) -> None:
    """Within seconds of the restart the sequence is CLOSED (FAILURE), every stream sealed, a
    reader following it is released; references and points are untouched; a pending number is
    no longer followed. ``RecoveryMode resume`` is for bliss1 only: closed as well."""
    server = bliss2_server(sequence_server, RecoveryMode=recovery)
    store = server.store
    expected = reach(server, point)
    waiter = EndWaiter(server, expected.name)
    try:
        server.kill()
        assert store.load_scan(expected.name).state is Bliss2State.STARTED  # nothing ran
        server.start()
        poll(lambda: store.get_scans_state([expected.name])[expected.name] is Bliss2State.CLOSED,
             RECOVERY, "the sequence the killed server left open CLOSED",
             lambda: device_view(server.proxy))
        assert waiter.released(DETECTION), waiter.error
    finally:
        waiter.close()
    assert_closed(server, expected.name, "FAILURE")
    proxy = server.proxy
    poll(lambda: proxy.State() == tango.DevState.ON, DETECTION, "the restarted device ON",
         lambda: device_view(proxy))
    assert references(store, expected.name) == (expected.names, expected.numbers)
    assert channel_points(store, expected.name, CHANNEL).tolist() == expected.points
    pending = list(expected.pending)
    run_pending(server, expected)  # runs now: must not join the closed sequence
    assert references(store, expected.name)[1] == [n for n in expected.numbers
                                                  if n not in pending]
    start_again(server)
