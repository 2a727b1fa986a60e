"""``tango-groups serve --tango-host`` on a database where its device is registered already (a
beamline's, after ``tango-groups register``): the device keeps every property whose option serve
was not given (Session, BasePath, DataFormat), gets the Redis it serves, and serve prints what it
wrote; its hints name that session and container, so the loopscan they write is the scan number
the device counts in; Ctrl-C ends the running sequence, and serve and the server say so.
"""

from __future__ import annotations

import shlex
import signal

import pytest
import tango
from processes import cli_process, serve_values

from tango_groups.cli import main
from tango_groups.runtime.tango_db import TangoDatabaseServer

DEVICE = "tango_groups/sequence_manager/1"
NAMES = ["RedisURL", "Session", "BasePath", "DataFormat"]


@pytest.fixture(scope="module")
def tango_db():
    with TangoDatabaseServer() as server:
        yield server


def properties(tango_host: str) -> dict[str, list[str]]:
    host, port = tango_host.split(":")
    found = tango.Database(host, int(port)).get_device_property(DEVICE, NAMES)
    return {name: list(value) for name, value in found.items()}


@pytest.mark.slow
def test_serve_keeps_what_register_wrote_and_says_what_it_wrote(tango_db, redis_url, capsys):
    host = tango_db.tango_host
    assert main(["register", "--tango-host", host, "--session", "id00", "--base-path",
                 "/data/id00", "--redis-url", "redis://beamline:25002"]) == 0
    capsys.readouterr()
    with cli_process("serve", "--tango-host", host, "--redis-url", redis_url) as (
            process, reader):
        lines = reader.until(lambda line: line == "READY")
        values = serve_values(lines)
        assert properties(host) == {"RedisURL": [redis_url], "Session": ["id00"],
                                    "BasePath": ["/data/id00"], "DataFormat": []}
        assert (f"registered {DEVICE}: BasePath=/data/id00, RedisURL={redis_url}, "
                "Session=id00") in lines
        assert f"{DEVICE}: ON (server SequenceManager/1, session id00, data format bliss1)" in (
            lines)
        hints = {lines[i - 1]: shlex.split(line)
                 for i, line in enumerate(lines) if line.startswith("    ")}
        loopscan = next(hint for text, hint in hints.items() if text.startswith(
            "Write a simulated scan"))
        assert loopscan[1:] == ["loopscan", "--redis-url", redis_url, "--session", "id00",
                                "--base-path", "/data/id00"]

        # the hint's scan is numbered where the device counts: AddScan finds it by number
        proxy = tango.DeviceProxy(f"tango://{host}/{values['DEVICE']}")
        sequence = proxy.Start("kept")
        assert sequence.startswith("id00:data:")
        assert main([*loopscan[1:], "--npoints", "1", "--count-time", "0"]) == 0
        scan, number = capsys.readouterr().out.split()
        assert scan.startswith("id00:data:") and proxy.AddScan(number) == scan

        process.send_signal(signal.SIGINT)  # while the sequence runs
        stopped = reader.until(lambda line: line.startswith("stopped "))[-1]
        assert stopped == f"stopped SequenceManager/1 ({DEVICE}: sequence {sequence} ended KILLED)"
        assert process.wait(30) == 0, process.stderr.read()
    # given again, an option does change what is registered
    with cli_process("serve", "--tango-host", host, "--redis-url", redis_url, "--session",
                     "id01") as (process, reader):
        reader.until(lambda line: line == "READY")
        assert properties(host)["Session"] == ["id01"]
        assert properties(host)["BasePath"] == ["/data/id00"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, process.stderr.read()
