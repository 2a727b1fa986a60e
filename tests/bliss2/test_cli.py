"""``tango-groups serve`` and ``listen`` with ``--data-format bliss2``, as a user runs them.

* ``serve --data-format bliss2`` (a subprocess): its private Redis has the modules and is set up
  for blissdata 2, so the ``REDIS_URL=`` it prints (once) is what ``DataStore(url)`` opens as is;
  the device is registered with ``DataFormat = bliss2`` (read back from the Tango database); the
  1.x side finds its data nodes (db 1) with that same URL; the hint to follow Bliss 2 runs.
* ``listen --data-format bliss2`` (subprocesses) on a sequence written with
  ``tango_groups.bliss2.SequenceScan`` whose sub-scans blissdata 2 writes itself: a followed key
  replays what exists, says on stderr that it waits, prints the live events in order and exits 0
  after the CLOSED; a session replays its scans in creation order, then follows new ones.
* what listen refuses, and says why.

Skipped, with the reason, where the server with RedisJSON and RediSearch cannot start.
"""

from __future__ import annotations

import shlex
import signal

import pytest

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

import tango
from bliss2_support import write_scan
from blissdata.redis_engine.store import DataStore
from processes import LineReader, cli_process, serve_values

from tango_groups.bliss1.node import get_node
from tango_groups.bliss2 import SequenceScan, find_scans
from tango_groups.cli import main
from tango_groups.data.channel import ChannelSpec
from tango_groups.runtime.redis_modules import ModulesUnavailable, modules_server_command

SESSION = "b2cli"
DEVICE = "tango_groups/sequence_manager/1"
SUM = ChannelSpec("sum", "float64")
SEQUENCE_NAME = "sequence_of_scans"  # SequenceScan's default scan name


@pytest.fixture(scope="module")
def serve_output():
    """A running ``tango-groups serve --data-format bliss2``: what it printed up to READY."""
    try:
        modules_server_command()
    except ModulesUnavailable as error:
        pytest.skip(f"no Redis with RedisJSON and RediSearch here: {error}")
    with cli_process("serve", "--data-format", "bliss2", "--session", SESSION) as (
            process, reader):
        yield reader.until(lambda line: line == "READY")
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, process.stderr.read()


@pytest.mark.slow
def test_serve_bliss2_gives_a_url_datastore_opens_and_registers_the_format(serve_output):
    values = serve_values(serve_output)
    for name in ("TANGO_HOST", "REDIS_URL", "DEVICE"):  # each parseable line once
        assert [line for line in serve_output if line.startswith(f"{name}=")] == [
            f"{name}={values[name]}"]
    url = values["REDIS_URL"]
    assert url.startswith("redis://127.0.0.1:") and url.count("/") == 2  # no db in it
    store = DataStore(url)  # as is: set up already (no init_db)
    assert find_scans(store, SESSION) == []

    host, port = values["TANGO_HOST"].split(":")
    properties = tango.Database(host, int(port)).get_device_property(
        DEVICE, ["DataFormat", "RedisURL", "Session"])
    assert list(properties["DataFormat"]) == ["bliss2"]
    assert list(properties["RedisURL"]) == [url] and list(properties["Session"]) == [SESSION]
    assert f"{DEVICE}: ON (server SequenceManager/1, session {SESSION}, data format bliss2)" in (
        serve_output)

    # the 1.x side, same URL: its data nodes in db 1, not in blissdata 2's db 0
    assert main(["loopscan", "--redis-url", url, "--session", SESSION, "--npoints", "1",
                 "--count-time", "0"]) == 0
    scan = get_node(f"{SESSION}:tmp:scans:1_loopscan", connection=url)
    assert scan is not None and scan.info["state"] == "DONE"
    assert get_node(scan.db_name, connection=f"{url}/0") is None
    assert find_scans(DataStore(url), SESSION) == []  # and blissdata 2 still opens its db


@pytest.mark.slow
def test_serve_bliss2_hint_follows_the_bliss2_data(serve_output):
    hints = {serve_output[i - 1]: shlex.split(line)
             for i, line in enumerate(serve_output) if line.startswith("    ")}
    assert not [hint for hint in hints if hint.startswith("Write a simulated scan")]  # 1.x
    listen = hints["Follow its Bliss 2 scans and sequences:"]
    url = serve_values(serve_output)["REDIS_URL"]
    assert listen[1:] == ["listen", "--data-format", "bliss2", "--redis-url", url,
                          "--session", SESSION]
    store = DataStore(url)
    key = write_scan(store, SESSION, 7)
    with cli_process(*listen[1:]) as (process, reader):
        assert reader.until(lambda line: line.startswith("CLOSED")) == [
            f"CREATED {key} 7 loopscan", f"CLOSED {key} 7 loopscan"]
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0, process.stderr.read()


def listen(url: str, *args: str):
    return cli_process("listen", "--data-format", "bliss2", "--redis-url", url, *args)


def states(key: str, *names: str, number: int = 1, name: str = SEQUENCE_NAME) -> list[str]:
    return [f"{state} {key} {number} {name}" for state in names]


@pytest.mark.slow
def test_listen_follows_a_sequence_key_until_it_is_closed(modules_redis, store, session_name):
    url = modules_redis.url
    first = write_scan(store, session_name, 2)
    sequence = SequenceScan(store, session=session_name, number=1, title="listened",
                            channels=[SUM])
    key = sequence.key
    subscans = f"NEW_DATA {key} GroupingMaster:SUBSCANS"
    sequence.add_scan(first)
    sequence.emit("sum", 1.0)
    with listen(url, "--sequence", key) as (process, reader):
        notes = LineReader(process, "stderr")
        note = notes.until(lambda line: "waiting" in line)[-1]
        assert note == (f"tango-groups listen: 4 events of {key} so far; waiting for new events "
                        "(Ctrl-C stops)")
        replayed = reader.until(lambda line: len(reader.seen) == 4)
        assert replayed[:2] == states(key, "CREATED", "STARTED")  # the states between: unknown
        assert sorted(replayed[2:]) == sorted([f"{subscans} 2 {first}",
                                               f"NEW_DATA {key} custom_channels:sum points 0..0"])
        second = write_scan(store, session_name, 3)  # live
        sequence.add_scan(second)
        assert reader.until(lambda line: second in line)[-1] == f"{subscans} 3 {second}"
        sequence.emit("sum", [2.0, 3.0])
        assert reader.until(lambda line: "points" in line)[-1] == (
            f"NEW_DATA {key} custom_channels:sum points 1..2")
        sequence.emit("sum", 4.0)
        sequence.end()  # that point is sealed with its stream at once: shown before the end
        ended = reader.until(lambda line: line.startswith("CLOSED"))[6:]
        assert process.wait(30) == 0, process.stderr.read()  # by itself, after the CLOSED
    last = f"NEW_DATA {key} custom_channels:sum points 3..3"
    closed = f"CLOSED {key} 1 {SEQUENCE_NAME} SUCCESS"
    assert ended in ([last, closed], [last, *states(key, "STOPPED"), closed])  # STOPPED: if seen
    assert reader.lines.get(timeout=10) is None  # the output ended with the CLOSED


@pytest.mark.slow
def test_listen_follows_a_session(modules_redis, store, session_name):
    url = modules_redis.url
    first = write_scan(store, session_name, 2)
    sequence = SequenceScan(store, session=session_name, number=1, title="listened")
    key = sequence.key
    sequence.add_scan(first)
    write_scan(store, f"{session_name}_other", 2)  # another session: never shown
    with listen(url, "--session", session_name) as (process, reader):
        notes = LineReader(process, "stderr")
        assert notes.until(lambda line: "waiting" in line)[-1] == (
            f"tango-groups listen: 2 scans of session {session_name!r} so far; waiting for new "
            "events (Ctrl-C stops)")
        replay = [*states(first, "CREATED", "CLOSED", number=2, name="loopscan"),
                  *states(key, "CREATED", "STARTED"),
                  f"NEW_DATA {key} GroupingMaster:SUBSCANS 2 {first}"]
        assert reader.until(lambda line: len(reader.seen) == len(replay)) == replay
        second = write_scan(store, session_name, 3)  # live: a new scan of the session
        sequence.add_scan(second)
        sequence.end()
        closed = f"CLOSED {key} 1 {SEQUENCE_NAME} SUCCESS"
        closed_second = f"CLOSED {second} 3 loopscan"
        reader.until(lambda line: {closed, closed_second} <= {*reader.seen})
        live = reader.seen[len(replay):]
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0, process.stderr.read()
    # each scan's lines in order (the states it was seen in); the new scan created before it is
    # referenced; the sequence's CLOSED after its reference (and its STOPPED, when seen)
    reference = f"NEW_DATA {key} GroupingMaster:SUBSCANS 3 {second}"
    own = [line for line in live if line.endswith(f" {second} 3 loopscan")]
    assert own[0] == f"CREATED {second} 3 loopscan" and own[-1] == closed_second
    seen_states = [line.split()[0] for line in own]  # never backwards, never twice
    assert seen_states == [state for state in ("CREATED", "PREPARED", "STARTED", "STOPPED",
                                               "CLOSED") if state in seen_states]
    ours = [line for line in live if line not in own]
    assert ours in ([reference, closed], [reference, *states(key, "STOPPED"), closed])
    assert live.index(own[0]) < live.index(reference)


def test_listen_refusals_say_why(modules_redis, store, session_name, capsys):
    url = modules_redis.url
    with pytest.raises(SystemExit):  # not offered: one listen follows one model
        main(["listen", "--data-format", "both", "--redis-url", url])
    assert "invalid choice: 'both'" in capsys.readouterr().err
    assert main(["listen", "--data-format", "bliss2", "--redis-url", url,
                 "--filter", "scan"]) == 1
    assert "--filter chooses Bliss 1.x node types" in capsys.readouterr().err
    scan = write_scan(store, session_name, 1)
    assert main(["listen", "--data-format", "bliss2", "--redis-url", url,
                 "--sequence", scan]) == 1
    assert "is a scan, not a sequence" in capsys.readouterr().err
    assert main(["listen", "--data-format", "bliss2", "--redis-url", url,
                 "--sequence", "esrf:scan:nope"]) == 1
    assert "no scan 'esrf:scan:nope' here" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_bliss2_loopscan_hint_writes_a_scan_the_device_adds_by_number(serve_output,
                                                                            capsys):
    hints = {serve_output[i - 1]: shlex.split(line)
             for i, line in enumerate(serve_output) if line.startswith("    ")}
    loopscan = hints["Write a simulated Bliss 2 scan:"]
    values = serve_values(serve_output)
    assert loopscan[1:] == ["loopscan", "--data-format", "bliss2", "--redis-url",
                            values["REDIS_URL"], "--session", SESSION]
    assert main([*loopscan[1:], "--npoints", "3", "--count-time", "0"]) == 0
    key, number = capsys.readouterr().out.split()
    scan = DataStore(values["REDIS_URL"]).load_scan(key)
    assert (scan.session, scan.number, scan.name) == (SESSION, int(number), "loopscan")
    proxy = tango.DeviceProxy(f"tango://{values['TANGO_HOST']}/{DEVICE}")
    proxy.Start("loopscan hint")
    try:
        assert proxy.AddScan(number) == key
    finally:
        proxy.End()
