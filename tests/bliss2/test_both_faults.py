"""Redis faults in ``DataFormat both``: the sequence goes on in both models as in each alone.

Each test has a Redis of its own (with RedisJSON and RediSearch) and a device process in
``DataFormat both``. A fault strikes during ``EmitChannel`` or ``AddScan``: Redis frozen
(SIGSTOP) past ``RedisTimeout``; or, to strike between the 1.x write and the Bliss 2 one (a
*half-done* request, which a pause cannot aim at), a Redis that refuses writes to the Bliss 2
streams (an ACL: ``esrf:stream:`` keys may be read, not written), then crashed and restarted
with its data (without the ACL), or with the ACL lifted. The client repeats the command (or
sends another); then each model holds every point and reference once, read by
``redis_checker`` (1.x, db 1) and blissdata 2.x (``bliss2_data``), and End gives DONE in both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
import redis
import tango

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

import bliss2_data
import redis_checker
from bliss2_support import write_scan
from tango_checks import refused, wait_until

from tango_groups.bliss2 import custom_stream_name, data_store
from tango_groups.runtime.redis_server import RedisServer
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

UNAVAILABLE = "SequenceManager_RedisUnavailable"
# keys it may write: all but blissdata's streams (esrf:stream:...), which it may read
NO_BLISS2_WRITES = ("resetkeys", "~[^e]*", "~esrf:scan:*", "%R~*")


class Both(NamedTuple):
    """A device in DataFormat both on a Redis of its own, with a scan of the same number in
    each model (``name``: the 1.x db_name, ``key``: the Bliss 2 key)."""

    server: RedisServer
    session: str
    proxy: tango.DeviceProxy
    store: Any
    name: str
    key: str
    number: int


@pytest.fixture
def both(session_name: str, start_device: Callable[..., Any]) -> Iterator[Both]:
    with RedisServer(modules=True) as server:
        session = Session(session_name, redis_url=server.url)
        try:
            scan = loopscan(3, 0.0, session.config.get("diode"), session=session)
        finally:
            session.close()
        store = data_store(server.url)
        key = write_scan(store, session_name, scan.scan_number, points=2)
        proxy = start_device(RedisURL=server.url, RedisTimeout=0.5, DataFormat="both").proxy
        proxy.Start(json.dumps({"channels": ["sum"]}))
        yield Both(server, session_name, proxy, store, scan.db_name, key, scan.scan_number)


def held_1x(both: Both) -> tuple[list[str], list[int], list[float]]:
    """What the 1.x model holds of the running (or last) sequence: references and points."""
    with redis.Redis.from_url(both.server.url, db=1) as client:
        db_name = both.proxy.SequenceName
        names, numbers = redis_checker.references(client, db_name)
        return names, numbers, redis_checker.channel_points(client, db_name, "sum").tolist()


def held(both: Both) -> dict[str, Any]:
    """What each model holds of the running (or last) sequence: references and points."""
    key = both.proxy.ScanKey
    keys, numbers = bliss2_data.references(both.store, key)
    return {"1.x": held_1x(both),
            "Bliss 2": (keys, numbers, bliss2_data.channel_points(both.store, key, "sum").tolist())}


def expected(both: Both, points: list[float], referenced: bool) -> dict[str, Any]:
    """Every point and, if ``referenced``, the scan, once in each model."""
    return {"1.x": ([both.name] if referenced else [], [both.number] if referenced else [],
                    points),
            "Bliss 2": ([both.key] if referenced else [], [both.number] if referenced else [],
                        points)}


def ended_done(both: Both) -> None:
    """End gives DONE in both models; nothing is left without its end."""
    db_name, key = both.proxy.SequenceName, both.proxy.ScanKey
    assert both.proxy.End() == "DONE"
    assert both.store.load_scan(key).info["end_reason"] == "SUCCESS"
    with redis.Redis.from_url(both.server.url, db=1) as client:
        assert redis_checker.has_end(client, db_name)
        assert redis_checker.problems(client, both.session) == []
    assert bliss2_data.problems(both.store, both.session) == []


def until_accepted(call: Callable[[], Any]) -> Any:
    """The client's retry: ``call`` again until it is accepted (RedisUnavailable meanwhile)."""
    answer: list[Any] = []

    def accepted() -> bool:
        try:
            answer.append(call())
        except tango.DevFailed as error:
            assert error.args[0].reason == UNAVAILABLE, error.args[0].desc
            return False
        return True

    wait_until(accepted)
    return answer[0]


COMMANDS = {"emit": lambda both: both.proxy.EmitChannel(([2.0], ["sum"])),
            "add": lambda both: both.proxy.AddScan(str(both.number))}
ANSWERS = {"emit": lambda both: 1, "add": lambda both: both.name}


@pytest.mark.parametrize("command", COMMANDS)
def test_redis_paused_during_a_command_then_retried(both: Both, command: str) -> None:
    """Redis frozen past RedisTimeout: the command is refused (what it sent may land once Redis
    wakes up); the client's retry writes nothing twice in either model."""
    both.proxy.EmitChannel(([1.0], ["sum"]))
    with both.server.paused():
        refused(UNAVAILABLE, lambda: COMMANDS[command](both))
        assert both.proxy.State() == tango.DevState.FAULT
    assert until_accepted(lambda: COMMANDS[command](both)) == ANSWERS[command](both)
    assert both.proxy.State() == tango.DevState.RUNNING
    points = [1.0, 2.0] if command == "emit" else [1.0]
    assert held(both) == expected(both, points, referenced=command == "add")
    ended_done(both)


def refuse_bliss2_keys(server: RedisServer) -> None:
    with redis.Redis.from_url(server.url) as client:
        client.execute_command("ACL", "SETUSER", "default", *NO_BLISS2_WRITES)


def allow_every_key(server: RedisServer) -> None:
    with redis.Redis.from_url(server.url) as client:
        client.execute_command("ACL", "SETUSER", "default", "allkeys")


def half_done(both: Both, command: str) -> None:
    """``command`` written by the 1.x side, not by the Bliss 2 side: refused."""
    both.proxy.EmitChannel(([1.0], ["sum"]))
    refuse_bliss2_keys(both.server)
    desc = refused(UNAVAILABLE, lambda: COMMANDS[command](both))
    assert desc.startswith("Bliss 2: ") and "which the 1.x sequence took" in desc


@pytest.mark.parametrize("command", COMMANDS)
def test_half_done_then_redis_restarted_with_its_data(both: Both, command: str) -> None:
    """The 1.x side wrote, the Bliss 2 side could not; Redis crashes and comes back with its data
    (and without the ACL): the client's retry writes the Bliss 2 side only."""
    half_done(both, command)
    assert held_1x(both) == expected(both, [1.0, 2.0] if command == "emit" else [1.0],
                                     referenced=command == "add")["1.x"]  # the 1.x side took it
    both.server.restart(keep_data=True)
    assert until_accepted(lambda: COMMANDS[command](both)) == ANSWERS[command](both)
    wait_until(lambda: both.proxy.State() == tango.DevState.RUNNING, what=both.proxy.Status)
    points = [1.0, 2.0] if command == "emit" else [1.0]
    assert held(both) == expected(both, points, referenced=command == "add")
    assert list(both.proxy.ScanNames) == ([both.name] if command == "add" else [])
    ended_done(both)


def test_other_requests_meanwhile_come_after_the_half_done_one(both: Both) -> None:
    """While the Bliss 2 side cannot write what the 1.x side took, other commands are refused and
    write nothing; once it can, the next command writes the missed points there first: both
    models hold what the client sent, in the order sent."""
    half_done(both, "emit")
    before = held_1x(both)
    refused(UNAVAILABLE, lambda: both.proxy.EmitChannel(([3.0], ["sum"])))
    refused(UNAVAILABLE, lambda: both.proxy.AddScan(str(both.number)))
    refused(UNAVAILABLE, both.proxy.End)
    assert held_1x(both) == before == ([], [], [1.0, 2.0])
    allow_every_key(both.server)
    assert until_accepted(lambda: both.proxy.AddScan(str(both.number))) == both.name
    assert both.proxy.EmitChannel(([3.0], ["sum"])) == 1
    wait_until(lambda: both.proxy.State() == tango.DevState.RUNNING, what=both.proxy.Status)
    assert held(both) == expected(both, [1.0, 2.0, 3.0], referenced=True)
    assert both.proxy.EmitChannel(([2.0], ["sum"])) == 1  # no longer a retry: new points
    assert held(both)["Bliss 2"][2] == [1.0, 2.0, 3.0, 2.0]
    ended_done(both)


@pytest.mark.parametrize("command", COMMANDS)
def test_end_after_a_half_done_request(both: Both, command: str) -> None:
    """End after a half-done request: the Bliss 2 side takes it first, then both end DONE."""
    half_done(both, command)
    allow_every_key(both.server)
    until_accepted(both.proxy.End)
    assert both.proxy.State() == tango.DevState.ON
    points = [1.0, 2.0] if command == "emit" else [1.0]
    assert held(both) == expected(both, points, referenced=command == "add")


def test_a_half_done_request_whose_bliss2_side_is_then_lost(both: Both) -> None:
    """The Bliss 2 stream is broken (not a stream: WRONGTYPE) when it would take points the 1.x
    side took, then Redis holds fewer of its points than it wrote: the Bliss 2 side is LOST, the
    client's retry writes nothing twice in 1.x, and End says what became of each side."""
    both.proxy.EmitChannel(([0.5], ["sum"]))
    db_name, key = both.proxy.SequenceName, both.proxy.ScanKey
    stream = both.store.load_scan(key).streams[custom_stream_name("sum")].key
    with redis.Redis.from_url(both.server.url) as client:
        client.delete(stream)
        client.set(stream, "not a stream")  # XADD: WRONGTYPE
        refused(UNAVAILABLE, lambda: both.proxy.EmitChannel(([1.5], ["sum"])))
        wait_until(lambda: both.proxy.State() == tango.DevState.FAULT, what=both.proxy.Status)
        client.delete(stream)  # the Bliss 2 point written before is gone with it
    wait_until(lambda: "Bliss 2: Redis lost points" in both.proxy.Status(),
               what=both.proxy.Status)
    assert both.proxy.EmitChannel(([1.5], ["sum"])) == 1  # the retry: the 1.x side had it
    assert both.proxy.State() == tango.DevState.FAULT
    assert held_1x(both) == ([], [], [0.5, 1.5])
    assert list(both.proxy.read_attribute("sum").value) == [0.5, 1.5]
    desc = refused("SequenceManager_SequenceLost", both.proxy.End)
    assert desc.startswith(f"1.x: sequence {db_name} ended DONE. Bliss 2: Redis lost points")
    assert desc.endswith("It is closed now (FAILURE).")
    assert both.store.load_scan(key).info["end_reason"] == "FAILURE"
