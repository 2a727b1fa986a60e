"""The embedded runtime and the ``tango-groups`` command line, with real processes.

* ``tango_groups.runtime``: the embedded Tango database starts, answers and stops (its port closed
  afterwards); the dsconfig fixtures load (and load again: json2tango exits with 0 or 2); the
  device server runtime reports unregistered instances and servers that die with their log.
* ``tango-groups loopscan`` / ``listen`` against the test Redis, in-process where they end by
  themselves and as subprocesses where only a signal ends them.
* ``tango-groups serve`` as a user runs it: a subprocess with nothing given (private Redis and Tango
  database), its output parsed, the device driven, then SIGINT or SIGTERM: exit code 0 and the
  Redis and database ports closed.

Tests that start processes (besides the session's Redis) are marked ``slow``.
"""

from __future__ import annotations

import signal
import sys
import time

import pytest
import tango
from processes import cli_process, port_is_open, serve_values, wait_for

from tango_groups.cli import describe, main
from tango_groups.data.node import get_node
from tango_groups.runtime.device_server import DeviceServer
from tango_groups.runtime.fixtures import (
    device_names,
    load_config,
    read_fixture,
    sequence_manager_config,
)
from tango_groups.runtime.redis_server import free_port
from tango_groups.runtime.tango_db import TangoDatabaseServer
from tango_groups.scanning.group import Sequence
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

DEVICE = "tango_groups/sequence_manager/1"


# -- fixtures: the configuration ------------------------------------------------------------------
def test_shipped_fixture_is_the_default_configuration():
    shipped = {key: value for key, value in read_fixture().items() if not key.startswith("_")}
    assert sequence_manager_config() == shipped
    properties = shipped["servers"]["SequenceManager"]["1"]["SequenceManager"][DEVICE]["properties"]
    assert properties == {"Session": ["tango_groups"], "BasePath": ["/tmp/scans"]}


def test_configuration_for_several_devices_and_overrides():
    config = sequence_manager_config("2", 3, {"RedisURL": "redis://db:6380", "Session": "demo"})
    devices = config["servers"]["SequenceManager"]["2"]["SequenceManager"]
    assert list(devices) == device_names("2", 3) == [
        "tango_groups/sequence_manager/2", "tango_groups/sequence_manager/2_2",
        "tango_groups/sequence_manager/2_3"]
    for device in devices.values():
        assert device["properties"] == {"Session": ["demo"], "BasePath": ["/tmp/scans"],
                                        "RedisURL": ["redis://db:6380"]}
    with pytest.raises(ValueError, match="at least one device"):
        device_names("1", 0)


# -- the embedded Tango database, fixture loading, the device server runtime ----------------------
@pytest.fixture(scope="module")
def tango_db():
    with TangoDatabaseServer() as server:
        yield server


@pytest.mark.slow
def test_embedded_database_starts_answers_and_stops():
    with TangoDatabaseServer() as server:
        host, port = server.tango_host.split(":")
        assert host == "127.0.0.1"
        servers = tango.Database(host, int(port)).get_server_list().value_string
        assert "DataBaseds/2" in servers
    assert not port_is_open(host, int(port))
    with pytest.raises(RuntimeError, match="not running"):
        server.tango_host  # noqa: B018 (the property raises)


@pytest.mark.slow
def test_fixtures_load_and_reload(tango_db):
    config = sequence_manager_config("load", 2, {"RedisURL": "redis://127.0.0.1:1"})
    assert load_config(config, tango_db.tango_host) == 2
    # pytango-db makes json2tango delete an empty alias on every run: 2 again, or 0
    assert load_config(config, tango_db.tango_host) in (0, 2)

    host, port = tango_db.tango_host.split(":")
    db = tango.Database(host, int(port))
    listed = db.get_device_class_list("SequenceManager/load").value_string
    assert listed[::2] == ["dserver/SequenceManager/load", *device_names("load", 2)]
    properties = db.get_device_property(device_names("load", 2)[1],
                                        ["RedisURL", "Session", "BasePath"])
    assert {name: list(value) for name, value in properties.items()} == {
        "RedisURL": ["redis://127.0.0.1:1"], "Session": ["tango_groups"],
        "BasePath": ["/tmp/scans"]}


@pytest.mark.slow
def test_invalid_configuration_raises_with_json2tango_output(tango_db):
    with pytest.raises(RuntimeError, match="json2tango could not write") as error:
        load_config({"nothing": {}}, tango_db.tango_host)
    assert "exit code 1" in str(error.value)


@pytest.mark.slow
def test_device_server_needs_registered_devices(tango_db):
    with pytest.raises(RuntimeError, match="no devices for server SequenceManager/unknown"):
        DeviceServer("unknown", tango_db.tango_host).start()


@pytest.mark.slow
def test_device_server_that_dies_is_reported_with_its_log(tango_db):
    load_config(sequence_manager_config("dies"), tango_db.tango_host)
    server = DeviceServer("dies", tango_db.tango_host,
                          command=[sys.executable, "-c", "raise SystemExit('no luck today')"])
    with pytest.raises(RuntimeError, match="exited with code 1") as error:
        server.start()
    assert "no luck today" in str(error.value)
    assert server.poll() is None  # stopped and forgotten


# -- loopscan and listen --------------------------------------------------------------------------
def test_loopscan_prints_db_name_and_scan_number(redis_url, redis_client, session_name, capsys):
    argv = ["loopscan", "--redis-url", redis_url, "--session", session_name, "--npoints", "3",
            "--count-time", "0.01"]
    assert main(argv) == 0
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    parent = f"{session_name}:tmp:scans"
    assert lines == [f"{parent}:1_loopscan 1", f"{parent}:2_loopscan 2"]
    scan = get_node(f"{parent}:2_loopscan", connection=redis_url)
    assert scan.info["npoints"] == 3 and scan.info["state"] == "DONE"


def write_sequence(redis_url: str, session_name: str) -> tuple[str, list[str]]:
    """A sequence of two scans in ``session_name``: its db_name and the scans' db_names."""
    session = Session(session_name, redis_url=redis_url).setup()
    try:
        diode = session.config.get("diode")
        seq = Sequence(title="listened")
        with seq.sequence_context() as scan_seq:
            scans = [loopscan(2, 0.01, diode, run=False) for _ in range(2)]
            for scan in scans:
                scan_seq.add_and_run(scan)
        return seq.node.db_name, [scan.db_name for scan in scans]
    finally:
        session.close()


def test_listen_to_a_sequence_ends_with_it(redis_url, redis_client, session_name, capsys):
    sequence, scans = write_sequence(redis_url, session_name)
    assert main(["listen", "--redis-url", redis_url, "--sequence", sequence]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"NEW_NODE {sequence}:GroupingMaster:scans",
        f"PREPARED_SCAN {sequence} 1",
        f"NEW_DATA {sequence}:GroupingMaster:scans {scans[0]} {scans[1]}",  # read at once
        f"END_SCAN {sequence} 1",
    ]


def test_channel_events_show_their_points(redis_url, redis_client, session_name):
    session = Session(session_name, redis_url=redis_url)
    scan = loopscan(3, 0.01, session.config.get("diode"), session=session)
    session.close()
    node = get_node(scan.db_name, connection=redis_url)
    channel = f"{scan.db_name}:timer:elapsed_time"
    described = [describe(event) for event in node.walk_events(filter="channel", wait=False)
                 if event.node.db_name == channel]
    # the three points are read in one go after the scan
    assert described == [f"NEW_NODE {channel}", f"NEW_DATA {channel} points 0..2"]


def test_command_errors_say_what_to_do(redis_url, redis_client, session_name, monkeypatch,
                                       capsys):
    monkeypatch.delenv("TANGO_GROUPS_REDIS_URL", raising=False)
    assert main(["listen"]) == 1
    assert "give --redis-url" in capsys.readouterr().err

    assert main(["loopscan", "--redis-url", redis_url, "--counters", "nope"]) == 1
    assert "no object 'nope'" in capsys.readouterr().err

    assert main(["loopscan", "--redis-url", redis_url, "--session", session_name,
                 "--npoints", "1", "--count-time", "0"]) == 0
    scan = capsys.readouterr().out.split()[0]
    assert main(["listen", "--redis-url", redis_url, "--sequence", scan]) == 1
    assert "is not a sequence or group" in capsys.readouterr().err

    dead = f"redis://:secret@127.0.0.1:{free_port()}"
    assert main(["loopscan", "--redis-url", dead]) == 1
    err = capsys.readouterr().err
    assert "does not answer" in err and "secret" not in err


@pytest.mark.slow
def test_listen_follows_a_session_live_until_interrupted(redis_url, redis_client, session_name):
    def expected(first: int, sequence: str, scans: list[str]) -> set[str]:
        return {f"{event} {name} {number}"
                for number, name in enumerate((sequence, *scans), start=first)
                for event in ("NEW_NODE", "PREPARED_SCAN", "END_SCAN")}

    with cli_process("listen", "--redis-url", redis_url, "--session", session_name) as (
            process, reader):
        before = expected(1, *write_sequence(redis_url, session_name))  # replayed
        # one round may hold several END_SCANs: they come in node order, not time order
        reader.until(lambda line: before <= {*reader.seen})
        live = expected(4, *write_sequence(redis_url, session_name))  # written while listening
        lines = reader.until(lambda line: before | live <= {*reader.seen})
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0, process.stderr.read()
    assert sorted(lines) == sorted(before | live)


# -- serve ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_serve_runs_a_device_and_stops_everything_it_started(stop_signal):
    started = time.monotonic()
    with cli_process("serve") as (process, reader):
        values = serve_values(reader.until(lambda line: line == "READY"))
        ready_after = time.monotonic() - started
        assert values["DEVICE"] == DEVICE
        assert values["REDIS_URL"].startswith("redis://127.0.0.1:")

        proxy = tango.DeviceProxy(f"tango://{values['TANGO_HOST']}/{DEVICE}")
        assert wait_for(lambda: proxy.State() == tango.DevState.ON), proxy.Status()
        sequence = proxy.Start("from serve")
        assert proxy.End() == "DONE"
        assert get_node(sequence, connection=values["REDIS_URL"]).info["state"] == "DONE"

        process.send_signal(stop_signal)
        assert process.wait(30) == 0, process.stderr.read()
    assert ready_after < 20, f"READY after {ready_after:.1f} s"
    tango_host, tango_port = values["TANGO_HOST"].split(":")
    redis_port = int(values["REDIS_URL"].rsplit(":", 1)[1])
    assert not port_is_open(tango_host, int(tango_port))
    assert not port_is_open("127.0.0.1", redis_port)
    with pytest.raises(tango.DevFailed):
        proxy.ping()
