"""Faults with real processes, in both data models (``DataFormat bliss1`` and ``bliss2``): Redis
crashed and restarted with and without its data, Redis frozen (SIGSTOP) past the device's
RedisTimeout and past the 3 s Tango client timeout, the device server SIGKILLed and restarted
(``RecoveryMode`` close and resume).

Each scenario is written once and runs in each model through its adapter (``models``, which
lists where the models differ on purpose: names, ends, readers and checkers). Each fault
strikes at several points of a sequence (``fault_points``: ``started``, ``scan_added``,
``emitted``, ``pending``; the sequence has a custom channel ``x`` and a finished scan,
``spare``, that it does not reference yet).

After each: the device and Redis agree (``ScanNames``, ``ScanNumbers``, ``PendingScans``, the
channel attribute == what the model's reader reads), every reference and point is there exactly
once, also after the client retried the command that failed, and no scan or sequence is left
without its end (``redis_checker.problems``, ``bliss2_data.problems``: a CLOSED Bliss 2 scan has
every stream sealed and a reader's cursors end). Clients are proxies with Tango's default 3 s
timeout: a command that Redis cannot serve fails with ``SequenceManager_RedisUnavailable`` (or
``SequenceLost``), never times out; a command refused changes nothing in Redis.

Every test starts its own server and Redis (``sequence_server``; the Bliss 2 one with RedisJSON
and RediSearch, skipped with the reason where it cannot start); waits are polls with deadlines.
The only sleep is the length of a Redis pause, which is the fault itself.
"""

from __future__ import annotations

import json
import time

import fault_points
import pytest
import tango
from fault_points import CHANNEL, CLIENT_TIMEOUT_S, DETECTION, LOST, POINTS, RECOVERY, Expected
from models import BLISS1, DataModel
from redis_checker import KeySnapshot
from sequence_server import (
    DATA_FORMATS,
    UNAVAILABLE,
    SequenceServer,
    device_view,
    poll,
    refused,
    retried,
    spectrum,
)

from tango_groups.scanning.scan import ScanState

pytestmark = pytest.mark.slow  # every test starts a device server and a Redis of its own


@pytest.fixture(params=DATA_FORMATS)
def model(request: pytest.FixtureRequest) -> DataModel:
    """The data model of the test (``models``)."""
    if request.param == BLISS1.data_format:
        return BLISS1
    pytest.importorskip("blissdata.redis_engine.store",
                        reason="blissdata 2.x (tango_groups[bliss2])")
    from model_bliss2 import BLISS2

    return BLISS2


# -- helpers ---------------------------------------------------------------------------------------
def reach(model: DataModel, server: SequenceServer, point: str) -> Expected:
    """Run a sequence up to ``point`` (``fault_points``); checks the device agrees."""
    expected = fault_points.reach(
        server, point, lambda server, expected: assert_agree(model, server, expected, True))
    model.assert_named(expected.name, f"fault at {point}")
    return expected


def assert_agree(model: DataModel, server: SequenceServer, expected: Expected,
                 running: bool) -> None:
    """Device == Redis == expected (every point once); nothing without its end but the running
    sequence."""
    proxy = server.proxy
    assert model.references(server, expected.name) == (expected.names, expected.numbers)
    stored = model.points(server, expected.name)
    assert stored == expected.points
    for attribute in model.name_attributes:
        assert proxy.read_attribute(attribute).value == expected.name, attribute
    assert spectrum(proxy, "ScanNames") == expected.names
    assert spectrum(proxy, "ScanNumbers") == expected.numbers
    assert spectrum(proxy, CHANNEL) == stored
    if running:
        assert proxy.State() == tango.DevState.RUNNING, proxy.Status()
        assert spectrum(proxy, "PendingScans") == expected.pending
    assert model.problems(server, running=expected.name if running else None) == []


def run_pending(server: SequenceServer, expected: Expected) -> list[tuple[str, int]]:
    """Write the scans of the pending numbers (none may have run before): (name, number)s."""
    ran = []
    for number in expected.pending:
        assert server.last_scan_number() < number, f"scan {number} ran before its time"
        while server.last_scan_number() < number:
            started = server.scan()
        assert started.scan_number == number
        ran.append((started.db_name, number))
    expected.pending = []
    return ran


def finish(model: DataModel, server: SequenceServer, expected: Expected) -> None:
    """Use the sequence after the fault (spare scan, a point, the pending scan), End it: DONE,
    everything exactly once, ended as the model ends a sequence."""
    proxy = server.proxy
    if expected.spare not in expected.names:
        assert proxy.AddScan(expected.spare) == expected.spare
        expected.names.append(expected.spare)
        expected.numbers.append(model.scan_number(server, expected.spare))
    assert proxy.EmitChannel(([9.0], [CHANNEL])) == 1
    expected.points.append(9.0)
    for name, number in run_pending(server, expected):
        expected.names.append(name)
        expected.numbers.append(number)
    poll(lambda: spectrum(proxy, "ScanNames") == expected.names, DETECTION,
         "the pending scan referenced once it ran",
         lambda: f"{spectrum(proxy, 'ScanNames')}, pending {spectrum(proxy, 'PendingScans')}")
    assert proxy.End() == "DONE"
    assert proxy.SequenceState == ScanState.DONE
    model.assert_ended(server, expected.name, ScanState.DONE)
    assert_agree(model, server, expected, running=False)


def start_again(model: DataModel, server: SequenceServer, previous: str,
                scan: object = None) -> None:
    """Start works again: a new sequence with a scan (``scan``, else a new one) and a point,
    ended DONE, nothing else left open."""
    proxy = server.proxy
    poll(lambda: proxy.State() == tango.DevState.ON, DETECTION, "ON", lambda: device_view(proxy))
    name = proxy.Start(json.dumps({"title": "next", "channels": [CHANNEL]}))
    assert name != previous
    model.assert_named(name, "next")
    scan = server.scan() if scan is None else scan
    assert proxy.AddScan(scan.db_name) == scan.db_name
    assert proxy.EmitChannel(([4.0], [CHANNEL])) == 1
    assert proxy.End() == "DONE"
    assert model.references(server, name) == ([scan.db_name], [scan.scan_number])
    assert model.points(server, name) == [4.0]
    model.assert_ended(server, name, ScanState.DONE)
    assert model.problems(server) == []


# -- Redis crashed ---------------------------------------------------------------------------------
@pytest.mark.parametrize("point", POINTS)
def test_redis_restarted_with_its_data(sequence_server, model: DataModel, point: str) -> None:
    """Down: FAULT, commands refused quickly (nothing written); back with its data, the sequence
    goes on (the refused EmitChannel retried is stored once, pending numbers are still followed,
    End: DONE)."""
    server = model.start(sequence_server)
    proxy = server.proxy
    expected = reach(model, server, point)
    server.redis.crash(keep_data=True)
    poll(lambda: proxy.State() == tango.DevState.FAULT, DETECTION, "FAULT while Redis is down",
         lambda: device_view(proxy))
    refused(UNAVAILABLE, lambda: proxy.EmitChannel(([3.0], [CHANNEL])))
    server.redis.start()
    poll(lambda: proxy.State() == tango.DevState.RUNNING, DETECTION,
         "RUNNING once Redis is back", lambda: device_view(proxy))
    assert retried(lambda: proxy.EmitChannel(([3.0], [CHANNEL]))) == 1
    expected.points.append(3.0)
    assert_agree(model, server, expected, running=True)
    finish(model, server, expected)


@pytest.mark.parametrize(("point", "closer"), [*((point, "End") for point in POINTS),
                                               ("emitted", "Abort")])
def test_redis_restarted_without_its_data(sequence_server, model: DataModel, point: str,
                                          closer: str) -> None:
    """The sequence is gone: FAULT naming it, SequenceLost for AddScan / EmitChannel (nothing
    written), End / Abort say SequenceLost and clear it; nothing of it comes back; Start works
    (once Bliss 2's db is set up again, as the beamline's Bliss does on its empty Redis)."""
    server = model.start(sequence_server)
    proxy = server.proxy
    expected = reach(model, server, point)
    server.redis.restart(keep_data=False)

    def lost() -> bool:
        status = proxy.Status()
        return proxy.State() == tango.DevState.FAULT and (
            expected.name in status or "lost" in status.lower())

    poll(lost, DETECTION, "FAULT with a Status naming the lost sequence",
         lambda: device_view(proxy))
    model.renew(server)
    # scans numbered from 1 again, up to the number that was pending: none may join the lost one
    new = [server.scan() for _ in range(max(expected.pending, default=1))]
    before = KeySnapshot.take(server.data_client)
    refused(LOST, lambda: proxy.AddScan(new[0].db_name))
    refused(LOST, lambda: proxy.EmitChannel(([3.0], [CHANNEL])))
    assert KeySnapshot.take(server.data_client).diff(before) == []
    refused(LOST, getattr(proxy, closer))
    poll(lambda: proxy.State() == tango.DevState.ON, DETECTION, "ON once the loss is cleared",
         lambda: device_view(proxy))
    model.assert_gone(server, expected.name)
    assert model.problems(server) == []
    start_again(model, server, expected.name, new[0])


# -- Redis frozen ----------------------------------------------------------------------------------
PAUSES = [pytest.param(2.2, id="past_RedisTimeout"), pytest.param(4.0, id="past_client_timeout")]


@pytest.mark.parametrize("pause", PAUSES)
@pytest.mark.parametrize("point", POINTS)
def test_redis_paused_then_resumed(sequence_server, model: DataModel, point: str,
                                   pause: float) -> None:
    """A frozen Redis meets an EmitChannel: RedisUnavailable within the client timeout (the XADD
    may land on SIGCONT), FAULT; the next commands are refused. Resumed: 1.x stores the retried
    EmitChannel exactly once, the next one works, a retried AddScan references the scan once,
    the sequence ends DONE; Bliss 2 answers SequenceLost to the retried EmitChannel and AddScan
    (storing nothing more), End closes it (FAILURE) and Start works again."""
    server = model.start(sequence_server)
    proxy = server.proxy
    expected = reach(model, server, point)
    frozen = time.monotonic()
    with server.redis.paused():
        refused(UNAVAILABLE, lambda: proxy.EmitChannel(([5.0, 6.0], [CHANNEL])))
        poll(lambda: proxy.State() == tango.DevState.FAULT, pause, "FAULT while Redis hangs",
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
        expected.numbers.append(model.scan_number(server, expected.spare))
    poll(lambda: proxy.State() == tango.DevState.RUNNING, DETECTION, "RUNNING once Redis answers",
         lambda: device_view(proxy))
    assert_agree(model, server, expected, running=True)
    finish(model, server, expected)


def test_points_that_landed_late_are_shown(sequence_server, model: DataModel) -> None:
    """A write met a frozen Redis; once End closed the sequence, the device's channel attribute
    == what the model's reader reads."""
    server = model.start(sequence_server)
    proxy = server.proxy
    expected = reach(model, server, "emitted")
    frozen = time.monotonic()
    with server.redis.paused():
        refused(UNAVAILABLE, lambda: proxy.EmitChannel(([5.0, 6.0], [CHANNEL])))
        time.sleep(max(0.0, frozen + 2.2 - time.monotonic()))  # the fault lasts 2.2 s
    assert retried(proxy.End) == "DONE"
    assert spectrum(proxy, CHANNEL) == model.points(server, expected.name)


# -- End and Abort retried -------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["crashed", "paused"])
@pytest.mark.parametrize(("command", "final"), [("End", ScanState.DONE),
                                                ("Abort", ScanState.USER_ABORTED)],
                         ids=["End", "Abort"])
def test_end_or_abort_retried_once_redis_is_back(sequence_server, model: DataModel, fault: str,
                                                 command: str, final: ScanState) -> None:
    """End / Abort refused because Redis is down or hangs closes the sequence once when retried:
    its reply and SequenceState say how (the final state, or what the model allows instead:
    ``closed_anyway``), and Redis agrees (one end, TTLs / end reason); the device is ON, nothing
    is left open, and Start works again."""
    server = model.start(sequence_server)
    proxy = server.proxy
    expected = reach(model, server, "emitted")
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
    except tango.DevFailed as error:
        shown = model.closed_anyway(fault, command, final, error)
    poll(lambda: proxy.State() == tango.DevState.ON, DETECTION, "ON after the retried " + command,
         lambda: device_view(proxy))
    assert proxy.SequenceState == shown
    model.assert_ended(server, expected.name, shown)
    assert_agree(model, server, expected, running=False)
    start_again(model, server, expected.name)


# -- the server SIGKILLed --------------------------------------------------------------------------
def killed_and_closed(model: DataModel, server: SequenceServer, expected: Expected) -> None:
    """SIGKILL, restart: within seconds the sequence has its end (KILLED), a reader following it
    is released, the device is ON (showing it as KILLED),
    references and points are untouched, a pending number is no longer followed; Start works
    again."""
    waiter = model.waiter(server, expected.name)
    try:
        server.kill()
        model.assert_open(server, expected.name)  # nothing ran at the kill
        server.start()
        poll(lambda: model.ended(server, expected.name), RECOVERY,
             "the end of the sequence the killed server left open",
             lambda: device_view(server.proxy))
        model.assert_ended(server, expected.name, ScanState.KILLED)
        assert waiter.released(DETECTION), waiter.error
    finally:
        waiter.close()
    proxy = server.proxy
    shown = (expected.name, ScanState.KILLED)
    poll(lambda: (proxy.State() == tango.DevState.ON
                  and (proxy.SequenceName, proxy.SequenceState) == shown), DETECTION,
         f"the restarted device ON, showing {shown}", lambda: device_view(proxy))
    assert model.references(server, expected.name) == (expected.names, expected.numbers)
    assert model.points(server, expected.name) == expected.points
    run_pending(server, expected)  # runs now: must not join the closed sequence
    assert model.references(server, expected.name) == (expected.names, expected.numbers)
    start_again(model, server, expected.name)


@pytest.mark.parametrize("point", POINTS)
def test_server_killed_then_restarted_closes_the_sequence(sequence_server, model: DataModel,
                                                          point: str) -> None:
    """RecoveryMode close (the default): the killed server's sequence is closed by its next
    start (``killed_and_closed``)."""
    server = model.start(sequence_server)
    killed_and_closed(model, server, reach(model, server, point))


@pytest.mark.parametrize("point", POINTS)
def test_server_killed_then_restarted_resumes_the_sequence(sequence_server, model: DataModel,
                                                           point: str) -> None:
    """RecoveryMode resume: the restarted device is RUNNING on the same sequence with its scans,
    pending numbers and channel points restored from Redis; it goes on and ends DONE."""
    server = model.start(sequence_server, RecoveryMode="resume")
    expected = reach(model, server, point)
    waiter = model.waiter(server, expected.name)
    try:
        server.kill()
        server.start()
        proxy = server.proxy
        poll(lambda: (proxy.State() == tango.DevState.RUNNING
                      and proxy.SequenceName == expected.name), RECOVERY,
             "the restarted device RUNNING the same sequence", lambda: device_view(proxy))
        model.assert_open(server, expected.name)
        assert_agree(model, server, expected, running=True)
        finish(model, server, expected)
        assert waiter.released(DETECTION), waiter.error
    finally:
        waiter.close()
