"""Faults with real processes: Redis crashed and restarted with and without its data, Redis frozen
(SIGSTOP) past the device's RedisTimeout and past the 3 s Tango client timeout, the device server
SIGKILLed and restarted (``RecoveryMode`` close and resume).

Each fault strikes at several points of a sequence (the steps are cumulative; the sequence has a
custom channel ``x`` and a finished scan, ``spare``, that it does not reference yet):

* ``started``: right after ``Start``;
* ``scan_added``: after ``AddScan`` of a finished scan;
* ``emitted``: after ``EmitChannel`` of two points;
* ``pending``: while a scan number added before its scan exists is pending.

After each: the device and Redis agree (``ScanNames``, ``ScanNumbers``, ``PendingScans``, the
channel attribute == what Redis holds), every reference and point is there exactly once, also
after the client retried the command that failed, and no scan or sequence is left without END
(``redis_checker.problems``). Clients are proxies with Tango's default 3 s timeout: a command that
Redis cannot serve must fail with ``SequenceManager_RedisUnavailable``, never time out.

Every test starts its own server and Redis (``sequence_server``); waits are polls with deadlines.
The only sleep is the length of a Redis pause, which is the fault itself.
"""

from __future__ import annotations

import functools
import json
import threading
import time

import fault_points
import pytest
import tango
from fault_points import (
    CHANNEL,
    CLIENT_TIMEOUT_S,
    DETECTION,
    LOST,
    POINTS,
    RECOVERY,
    Expected,
)
from redis_checker import (
    KeySnapshot,
    channel_points,
    has_end,
    keys_without_ttl,
    problems,
    references,
)
from sequence_server import (
    UNAVAILABLE,
    SequenceServer,
    device_view,
    poll,
    refused,
    retried,
    spectrum,
)

from tango_groups.bliss1 import keys
from tango_groups.bliss1.node import EventType, get_node
from tango_groups.data.connection import connect
from tango_groups.scanning.scan import ScanState

pytestmark = pytest.mark.slow  # every test starts a device server and a Redis of its own


# -- helpers ----------------------------------------------------------------------------------------
def state(proxy: tango.DeviceProxy) -> tango.DevState:
    return proxy.State()


def reach(server: SequenceServer, point: str) -> Expected:
    """Run a sequence up to ``point`` (``fault_points``); checks the device agrees."""
    return fault_points.reach(server, point, functools.partial(assert_agree, running=True))


def assert_agree(server: SequenceServer, expected: Expected, running: bool) -> None:
    """Device == Redis == expected; no node without END but the running sequence."""
    proxy, client = server.proxy, server.client
    assert references(client, expected.name) == (expected.names, expected.numbers)
    assert channel_points(client, expected.name, CHANNEL).tolist() == expected.points
    assert proxy.SequenceName == expected.name
    assert spectrum(proxy, "ScanNames") == expected.names
    assert spectrum(proxy, "ScanNumbers") == expected.numbers
    assert spectrum(proxy, CHANNEL) == expected.points
    if running:
        assert state(proxy) == tango.DevState.RUNNING, proxy.Status()
        assert spectrum(proxy, "PendingScans") == expected.pending
    assert problems(client, server.session_name,
                    running=expected.name if running else None) == []


def assert_ended(server: SequenceServer, db_name: str, final: ScanState) -> None:
    """The sequence has exactly one END, its final state, and every key a TTL."""
    client = server.client
    assert client.xlen(db_name + keys.END) == 1
    assert get_node(db_name, connection=client).info["state"] == final.name
    assert keys_without_ttl(client, db_name) == []


def finish(server: SequenceServer, expected: Expected) -> None:
    """Use the sequence after the fault (spare scan, a point, the pending scan), End it: DONE,
    everything exactly once."""
    proxy = server.proxy
    if expected.spare not in expected.names:
        assert proxy.AddScan(expected.spare) == expected.spare
        expected.names.append(expected.spare)
        expected.numbers.append(int(get_node(expected.spare, connection=server.client)
                                    .info["scan_nb"]))
    assert proxy.EmitChannel(([9.0], [CHANNEL])) == 1
    expected.points.append(9.0)
    for number in expected.pending:
        assert server.last_scan_number() < number, f"scan {number} ran before its time"
        while server.last_scan_number() < number:
            started = server.scan()
        assert started.scan_number == number
        expected.names.append(started.db_name)
        expected.numbers.append(number)
    expected.pending = []
    poll(lambda: spectrum(proxy, "ScanNames") == expected.names, DETECTION,
         "the pending scan referenced once it ran",
         lambda: f"{spectrum(proxy, 'ScanNames')}, pending {spectrum(proxy, 'PendingScans')}")
    assert proxy.End() == "DONE"
    assert proxy.SequenceState == ScanState.DONE
    assert_ended(server, expected.name, ScanState.DONE)
    assert_agree(server, expected, running=False)


class EndWaiter:
    """A reader in a thread, following the sequence's events until its END (as Flint or
    ``tango-groups listen --sequence`` do)."""

    def __init__(self, url: str, db_name: str) -> None:
        self.client = connect(url)
        node = get_node(db_name, connection=self.client)
        self.walk = node.walk_events(wait=True)
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._follow, args=(db_name,), daemon=True)
        self.thread.start()

    def _follow(self, db_name: str) -> None:
        try:
            for event in self.walk:
                if event.type is EventType.END_SCAN and event.node.db_name == db_name:
                    self.ended.set()
                    return
        except BaseException as error:  # noqa: BLE001 (reported by released())
            self.error = error

    def released(self, timeout: float) -> bool:
        self.ended.wait(timeout)
        return self.ended.is_set()

    def close(self) -> None:
        self.walk.stop()
        self.thread.join(5)
        self.client.close()


# -- Redis crashed ----------------------------------------------------------------------------------
@pytest.mark.parametrize("point", POINTS)
def test_redis_restarted_with_its_data(sequence_server, point: str) -> None:
    """Down: FAULT, commands refused quickly; back with its data: the sequence goes on, the
    refused EmitChannel retried is stored once, pending numbers are still followed, End: DONE."""
    server = sequence_server(Channels=[CHANNEL])
    proxy = server.proxy
    expected = reach(server, point)
    server.redis.crash(keep_data=True)
    poll(lambda: state(proxy) == tango.DevState.FAULT, DETECTION, "FAULT while Redis is down",
         lambda: device_view(proxy))
    refused(UNAVAILABLE, lambda: proxy.EmitChannel(([3.0], [CHANNEL])))
    server.redis.start()
    poll(lambda: state(proxy) == tango.DevState.RUNNING, DETECTION, "RUNNING once Redis is back",
         lambda: device_view(proxy))
    assert retried(lambda: proxy.EmitChannel(([3.0], [CHANNEL]))) == 1
    expected.points.append(3.0)
    assert_agree(server, expected, running=True)
    finish(server, expected)


@pytest.mark.parametrize(("point", "closer"), [*((point, "End") for point in POINTS),
                                               ("emitted", "Abort")])
def test_redis_restarted_without_its_data(sequence_server, point: str, closer: str) -> None:
    """The sequence is gone: FAULT naming it, SequenceLost for AddScan / EmitChannel (nothing
    written), End / Abort say SequenceLost and clear it; nothing of it comes back; Start works."""
    server = sequence_server(Channels=[CHANNEL])
    proxy, client = server.proxy, server.client
    expected = reach(server, point)
    server.redis.restart(keep_data=False)

    def lost() -> bool:
        status = proxy.Status()
        return state(proxy) == tango.DevState.FAULT and (
            expected.name in status or "lost" in status.lower())

    poll(lost, DETECTION, "FAULT with a Status naming the lost sequence",
         lambda: device_view(proxy))
    # scans numbered from 1 again, up to the number that was pending: none may join the lost one
    new = [server.scan() for _ in range(max(expected.pending, default=1))]
    before = KeySnapshot.take(client)
    refused(LOST, lambda: proxy.AddScan(new[0].db_name))
    refused(LOST, lambda: proxy.EmitChannel(([3.0], [CHANNEL])))
    assert KeySnapshot.take(client).diff(before) == []
    refused(LOST, getattr(proxy, closer))
    poll(lambda: state(proxy) == tango.DevState.ON, DETECTION, "ON once the loss is cleared",
         lambda: device_view(proxy))
    assert list(client.scan_iter(match=keys.glob_escape(expected.name) + "*")) == []
    assert problems(client, server.session_name) == []

    db_name = proxy.Start(json.dumps({"title": "after the loss", "channels": [CHANNEL]}))
    assert db_name != expected.name
    assert proxy.AddScan(new[0].db_name) == new[0].db_name
    assert proxy.EmitChannel(([4.0], [CHANNEL])) == 1
    assert proxy.End() == "DONE"
    assert references(client, db_name) == ([new[0].db_name], [new[0].scan_number])
    assert channel_points(client, db_name, CHANNEL).tolist() == [4.0]
    assert problems(client, server.session_name) == []


# -- Redis frozen -----------------------------------------------------------------------------------
PAUSES = [pytest.param(2.2, id="past_RedisTimeout"), pytest.param(4.0, id="past_client_timeout")]


@pytest.mark.parametrize("pause", PAUSES)
@pytest.mark.parametrize("point", POINTS)
def test_redis_paused_then_resumed(sequence_server, point: str, pause: float) -> None:
    """A frozen Redis: commands fail with RedisUnavailable within the client timeout (the XADD
    may land on SIGCONT), FAULT; resumed: the retried EmitChannel is stored exactly once, the next
    one works, a retried AddScan references the scan once, the sequence ends DONE."""
    server = sequence_server(Channels=[CHANNEL])
    proxy = server.proxy
    expected = reach(server, point)
    frozen = time.monotonic()
    with server.redis.paused():
        refused(UNAVAILABLE, lambda: proxy.EmitChannel(([5.0, 6.0], [CHANNEL])))
        poll(lambda: state(proxy) == tango.DevState.FAULT, pause, "FAULT while Redis hangs",
             lambda: device_view(proxy))
        if pause > CLIENT_TIMEOUT_S:
            refused(UNAVAILABLE, lambda: proxy.AddScan(expected.spare))
        time.sleep(max(0.0, frozen + pause - time.monotonic()))  # the fault lasts `pause`
    assert retried(lambda: proxy.EmitChannel(([5.0, 6.0], [CHANNEL]))) == 2
    assert proxy.EmitChannel(([7.0], [CHANNEL])) == 1
    expected.points += [5.0, 6.0, 7.0]
    if pause > CLIENT_TIMEOUT_S:
        try:
            assert proxy.AddScan(expected.spare) == expected.spare
        except tango.DevFailed as error:
            assert error.args[0].reason == "SequenceManager_DuplicateScan", error.args[0].desc
        expected.names.append(expected.spare)
        expected.numbers.append(int(get_node(expected.spare, connection=server.client)
                                    .info["scan_nb"]))
    poll(lambda: state(proxy) == tango.DevState.RUNNING, DETECTION, "RUNNING once Redis answers",
         lambda: device_view(proxy))
    assert_agree(server, expected, running=True)
    finish(server, expected)


# -- End and Abort retried ----------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["crashed", "paused"])
@pytest.mark.parametrize(("command", "final"), [("End", ScanState.DONE),
                                                ("Abort", ScanState.USER_ABORTED)],
                         ids=["End", "Abort"])
def test_end_or_abort_retried_once_redis_is_back(sequence_server, fault: str, command: str,
                                                 final: ScanState) -> None:
    """End / Abort refused because Redis is down or hangs works when retried: one END, the final
    state in Redis and on the device, TTLs set, the device ON and ready for the next sequence."""
    server = sequence_server(Channels=[CHANNEL])
    proxy = server.proxy
    expected = reach(server, "emitted")
    if fault == "crashed":
        server.redis.crash(keep_data=True)
        refused(UNAVAILABLE, getattr(proxy, command))
        server.redis.start()
        assert retried(getattr(proxy, command)) == final.name
    else:
        frozen = time.monotonic()
        with server.redis.paused():
            refused(UNAVAILABLE, getattr(proxy, command))
            time.sleep(max(0.0, frozen + 1.5 - time.monotonic()))  # the END may land on SIGCONT
        try:
            assert retried(getattr(proxy, command)) == final.name
        except tango.DevFailed as error:  # the END landed: the device read it back
            assert error.args[0].reason == "SequenceManager_NotRunning", error.args[0].desc
    poll(lambda: state(proxy) == tango.DevState.ON, DETECTION, "ON after the retried " + command,
         lambda: device_view(proxy))
    assert proxy.SequenceState == final
    assert_ended(server, expected.name, final)
    assert_agree(server, expected, running=False)
    assert proxy.Start("next").endswith("_next")
    assert proxy.End() == "DONE"
    assert problems(server.client, server.session_name) == []


# -- the server SIGKILLed ---------------------------------------------------------------------------
@pytest.mark.parametrize("point", POINTS)
def test_server_killed_then_restarted_closes_the_sequence(sequence_server, point: str) -> None:
    """RecoveryMode close (the default): within seconds of the restart the sequence has its END
    (KILLED, TTLs), a reader waiting for it is released, the device is ON showing it as KILLED,
    references and points are untouched, a pending number is no longer followed."""
    server = sequence_server(Channels=[CHANNEL])
    client = server.client
    expected = reach(server, point)
    waiter = EndWaiter(server.redis.url, expected.name)
    try:
        server.kill()
        assert not has_end(client, expected.name)  # nothing ran at the kill
        server.start()
        poll(lambda: has_end(client, expected.name), RECOVERY,
             "the END of the sequence the killed server left open",
             lambda: device_view(server.proxy))
        assert_ended(server, expected.name, ScanState.KILLED)
        assert waiter.released(DETECTION), waiter.error
    finally:
        waiter.close()
    proxy = server.proxy
    poll(lambda: (state(proxy) == tango.DevState.ON
                  and proxy.SequenceName == expected.name
                  and proxy.SequenceState == ScanState.KILLED), DETECTION,
         "the restarted device ON, showing the KILLED sequence", lambda: device_view(proxy))
    assert references(client, expected.name) == (expected.names, expected.numbers)
    assert channel_points(client, expected.name, CHANNEL).tolist() == expected.points
    for number in expected.pending:  # runs now: must not join the closed sequence
        while server.last_scan_number() < number:
            server.scan()
    db_name = proxy.Start("after the crash")
    assert proxy.End() == "DONE"
    assert references(client, expected.name) == (expected.names, expected.numbers)
    assert_ended(server, db_name, ScanState.DONE)
    assert problems(client, server.session_name) == []


@pytest.mark.parametrize("point", POINTS)
def test_server_killed_then_restarted_resumes_the_sequence(sequence_server, point: str) -> None:
    """RecoveryMode resume: the restarted device is RUNNING on the same sequence with its scans,
    pending numbers and channel points restored from Redis; it goes on and ends DONE."""
    server = sequence_server(RecoveryMode="resume", Channels=[CHANNEL])
    expected = reach(server, point)
    waiter = EndWaiter(server.redis.url, expected.name)
    try:
        server.kill()
        server.start()
        proxy = server.proxy
        poll(lambda: (state(proxy) == tango.DevState.RUNNING
                      and proxy.SequenceName == expected.name), RECOVERY,
             "the restarted device RUNNING the same sequence", lambda: device_view(proxy))
        assert not has_end(server.client, expected.name)
        assert_agree(server, expected, running=True)
        finish(server, expected)
        assert waiter.released(DETECTION), waiter.error
    finally:
        waiter.close()
