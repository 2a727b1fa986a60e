"""The embedded runtime and the ``tango-groups`` command line, with real processes.

* ``tango_groups.runtime``: the embedded Tango database starts, answers and stops (its port closed
  afterwards); the dsconfig fixtures load (and load again: json2tango exits with 0 or 2); the
  device server runtime reports unregistered instances and servers that die with their log.
* ``tango-groups loopscan`` / ``listen`` against the test Redis, in-process where they end by
  themselves and as subprocesses where only a signal ends them; ``listen`` notes what it cannot
  read (crafted pickles in a scan's info and END) and goes on.
* ``tango-groups serve`` as a user runs it: a subprocess with nothing given (private Redis and Tango
  database), its output parsed, the device driven, then SIGINT, SIGTERM or SIGHUP: exit code 0,
  the Redis and database ports closed, every process it started gone (``demo`` too). With
  ``TANGO_HOST`` in the environment naming a "beamline" database, serve leaves that database
  alone; with an explicit ``--tango-host`` it adds its own server and changes nothing else.

Tests that start processes (besides the session's Redis) are marked ``slow``.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
import tango
from hostile import evil_pickle
from processes import (
    LineReader,
    child_pids,
    cli_process,
    command_line,
    is_running,
    port_is_open,
    serve_values,
    wait_for,
)

from tango_groups.bliss1.node import get_node
from tango_groups.cli import main
from tango_groups.cli.formatting import describe
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


def test_fixtures_prints_the_shipped_json(capsys):
    assert main(["fixtures"]) == 0
    assert json.loads(capsys.readouterr().out) == read_fixture()
    assert main(["fixtures", "--path"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.name == "sequence_manager.json" and json.loads(path.read_text()) == read_fixture()


@pytest.mark.slow
def test_register_writes_devices_and_keeps_what_is_not_given(tango_db, capsys):
    host = tango_db.tango_host
    assert main(["register", "--tango-host", host, "--instance", "reg", "--session", "id00",
                 "--redis-url", "redis://:secret@beamline:25002"]) == 0
    out = capsys.readouterr().out
    assert "secret" not in out and "RedisURL=redis://:***@beamline:25002" in out
    assert out.splitlines()[-1].endswith(" reg") and f"TANGO_HOST={host} " in out
    assert main(["register", "--tango-host", host, "--instance", "reg", "--devices", "2",
                 "--base-path", "/data/id00", "--data-format", "bliss2"]) == 0
    database = tango.Database(host.split(":")[0], int(host.split(":")[1]))
    first, second = (
        {name: list(value) for name, value in database.get_device_property(
            device, ["RedisURL", "Session", "BasePath", "DataFormat"]).items()}
        for device in device_names("reg", 2))
    assert first == {"RedisURL": ["redis://:secret@beamline:25002"], "Session": ["id00"],
                     "BasePath": ["/data/id00"], "DataFormat": ["bliss2"]}
    assert second == {"RedisURL": [], "Session": ["tango_groups"], "BasePath": ["/data/id00"],
                      "DataFormat": ["bliss2"]}
    with pytest.raises(SystemExit):  # the database is never implied
        main(["register", "--instance", "reg"])
    assert main(["register", "--tango-host", f"127.0.0.1:{free_port()}"]) == 1
    assert "does not answer" in capsys.readouterr().err


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


def test_listen_to_a_sequence_whose_references_expired_says_so(redis_url, redis_client,
                                                              session_name, capsys):
    sequence, scans = write_sequence(redis_url, session_name)
    # what Redis does DataExpiration seconds after the end: the channel data is gone
    assert redis_client.delete(f"{sequence}:GroupingMaster:scans_data") == 1
    assert main(["listen", "--redis-url", redis_url, "--sequence", sequence]) == 0
    out, err = capsys.readouterr()
    assert not [line for line in out.splitlines() if scans[0] in line]
    assert (f"sequence {sequence} has ended and Redis holds no references to its scans: none "
            "were added, or they expired") in " ".join(err.split())


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
    monkeypatch.delenv("REDIS_URL", raising=False)
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

    sequence, scans = write_sequence(redis_url, session_name)
    with cli_process("listen", "--redis-url", redis_url, "--session", session_name) as (
            process, reader):
        before = expected(1, sequence, scans)  # replayed, in the order it happened
        replayed = reader.until(lambda line: before <= {*reader.seen})
        assert replayed == [
            f"NEW_NODE {sequence} 1", f"PREPARED_SCAN {sequence} 1",
            *(f"{event} {scan} {number}" for number, scan in enumerate(scans, start=2)
              for event in ("NEW_NODE", "PREPARED_SCAN", "END_SCAN")),
            f"END_SCAN {sequence} 1"]
        # live: one round may hold several END_SCANs, in node order
        live = expected(4, *write_sequence(redis_url, session_name))  # written while listening
        lines = reader.until(lambda line: before | live <= {*reader.seen})
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0, process.stderr.read()
    assert sorted(lines) == sorted(before | live)


@pytest.mark.slow
def test_listen_to_an_empty_session_says_it_waits(redis_url, redis_client, session_name):
    write_sequence(redis_url, session_name)
    with cli_process("listen", "--redis-url", redis_url, "--session", "typo") as (
            process, reader):
        notes = LineReader(process, "stderr")
        note = notes.until(lambda line: "waiting" in line)[-1]
        assert note == (f"tango-groups listen: nothing in session 'typo' of the Redis at "
                        f"{redis_url} yet (sessions there: {session_name}); waiting for new "
                        "events (Ctrl-C stops)")
        session = Session("typo", redis_url=redis_url)
        scan = loopscan(1, 0, session.config.get("diode"), session=session)
        session.close()
        reader.until(lambda line: line == f"END_SCAN {scan.db_name} 1")
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0


@pytest.mark.slow
def test_listen_notes_what_it_cannot_read_and_goes_on(redis_url, redis_client, session_name,
                                                      tmp_path):
    marker = tmp_path / "marker"
    evil = evil_pickle(f"touch {marker}")
    session = Session(session_name, redis_url=redis_url)
    diode = session.config.get("diode")
    bad_info, bad_end = (loopscan(2, 0.01, diode, session=session) for _ in range(2))
    redis_client.hset(bad_info.db_name + "_info", "scan_nb", evil)
    redis_client.delete(bad_end.db_name + "_end")
    redis_client.xadd(bad_end.db_name + "_end", {"__EVENT__": "END_SCAN", "__EXCEPTION__": evil})
    try:
        with cli_process("listen", "--redis-url", redis_url, "--session", session_name) as (
                process, reader):
            reader.until(lambda line: line.startswith(f"END_SCAN {bad_end.db_name} "))
            good = loopscan(2, 0.01, diode, session=session)  # written while listening
            reader.until(lambda line: line == f"END_SCAN {good.db_name} 3")
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 0
            assert "Traceback" not in process.stderr.read()
    finally:
        session.close()
    unreadable_info = f"(unreadable: {bad_info.db_name}_info field 'scan_nb': refusing to unpickle"
    by_node = {name: [line for line in reader.seen if line.split()[1] == name]
               for name in (bad_info.db_name, bad_end.db_name, good.db_name)}
    assert [line.split(" (")[0] for line in by_node[bad_info.db_name]] == [
        f"{event} {bad_info.db_name}" for event in ("NEW_NODE", "PREPARED_SCAN", "END_SCAN")]
    assert all(unreadable_info in line for line in by_node[bad_info.db_name])
    assert by_node[bad_end.db_name][:2] == [f"NEW_NODE {bad_end.db_name} 2",
                                            f"PREPARED_SCAN {bad_end.db_name} 2"]
    assert by_node[bad_end.db_name][2].startswith(
        f"END_SCAN {bad_end.db_name} 2 (unreadable: {bad_end.db_name}_end entry ")
    assert "refusing to unpickle" in by_node[bad_end.db_name][2]
    assert len(by_node[bad_end.db_name]) == 3
    assert by_node[good.db_name] == [f"{event} {good.db_name} 3"
                                     for event in ("NEW_NODE", "PREPARED_SCAN", "END_SCAN")]
    assert not marker.exists()


# -- serve ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["INT", "TERM", "HUP"])  # HUP: the terminal was closed
def test_serve_runs_a_device_and_stops_everything_it_started(stop_signal):
    started = time.monotonic()
    with cli_process("serve") as (process, reader):
        values = serve_values(reader.until(lambda line: line == "READY"))
        ready_after = time.monotonic() - started
        started_processes = child_pids(process.pid)
        assert len(started_processes) == 3  # redis-server, the database, the device server
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
    assert not [pid for pid in started_processes if is_running(pid)]


@pytest.mark.slow
def test_demo_stopped_by_a_signal_stops_what_it_started():
    def device_server_started() -> bool:
        return any("SequenceManager" in command_line(pid) for pid in child_pids(process.pid))

    with cli_process("demo") as (process, _):
        # its private stack is starting: Redis and the database run, the device server starts
        assert wait_for(device_server_started, timeout=30)
        started_processes = child_pids(process.pid)
        assert len(started_processes) == 3
        process.send_signal(signal.SIGHUP)
        assert process.wait(30) == 128 + signal.SIGHUP, process.stderr.read()
    assert not [pid for pid in started_processes if is_running(pid)]


BEAMLINE_REDIS = "redis://beamline-redis:25002"


@pytest.fixture(scope="module")
def beamline(tango_db) -> tango.Database:
    """The module's database as a beamline's: ``SequenceManager/1`` registered with the beamline's
    ``RedisURL``, not running."""
    load_config(sequence_manager_config("1", 1, {"RedisURL": BEAMLINE_REDIS}), tango_db.tango_host)
    host, port = tango_db.tango_host.split(":")
    return tango.Database(host, int(port))


def registrations(db: tango.Database) -> dict[str, object]:
    """What a serve could change in a database: the servers with their devices and classes, the
    exported devices, the properties of the beamline's device."""
    return {
        "servers": {server: list(db.get_device_class_list(server).value_string)
                    for server in db.get_server_list("*").value_string},
        "exported": sorted(db.get_device_exported("*").value_string),
        "properties": {name: list(value) for name, value in db.get_device_property(
            DEVICE, ["RedisURL", "Session", "BasePath"]).items()},
    }


@pytest.mark.slow
def test_serve_leaves_the_tango_host_of_the_environment_alone(tango_db, beamline):
    before = registrations(beamline)
    assert before["properties"]["RedisURL"] == [BEAMLINE_REDIS]
    with cli_process("serve", env={"TANGO_HOST": tango_db.tango_host}) as (process, reader):
        lines = reader.until(lambda line: line == "READY")
        values = serve_values(lines)
        assert values["TANGO_HOST"] != tango_db.tango_host  # its private database
        assert registrations(beamline) == before
        proxy = tango.DeviceProxy(f"tango://{values['TANGO_HOST']}/{DEVICE}")
        assert proxy.get_property("RedisURL")["RedisURL"] == [values["REDIS_URL"]]
        # the user is told how to register into the environment's database instead
        assert any(tango_db.tango_host in line and "--tango-host" in line for line in lines)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, process.stderr.read()
    assert registrations(beamline) == before


@pytest.mark.slow
def test_serve_with_an_explicit_tango_host_writes_only_its_own_devices(tango_db, beamline):
    before = registrations(beamline)
    with cli_process("serve", "--tango-host", tango_db.tango_host, "--instance", "explicit") as (
            process, reader):
        values = serve_values(reader.until(lambda line: line == "READY"))
        assert values["TANGO_HOST"] == tango_db.tango_host
        assert values["DEVICE"] == "tango_groups/sequence_manager/explicit"
        proxy = tango.DeviceProxy(f"tango://{tango_db.tango_host}/{values['DEVICE']}")
        assert proxy.get_property("RedisURL")["RedisURL"] == [values["REDIS_URL"]]
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, process.stderr.read()
    after = registrations(beamline)
    assert after["servers"].pop("SequenceManager/explicit") == [
        "dserver/SequenceManager/explicit", "DServer",
        "tango_groups/sequence_manager/explicit", "SequenceManager"]
    assert after == before
