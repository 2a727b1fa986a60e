"""``SequenceManager <instance>`` run the Tango way (registered in a Tango database, started as a
process) and stopped the way Starter, systemd or Ctrl-C stop it: SIGTERM or SIGINT end it
cleanly (exit code 0, no "unforeseen exception"), and a running sequence gets its END (KILLED) so
that no reader waits for it, which the server's log says."""

from __future__ import annotations

import signal

import pytest
import redis

from tango_groups.bliss1.node import get_node
from tango_groups.runtime.device_server import DeviceServer
from tango_groups.runtime.fixtures import load_config, sequence_manager_config
from tango_groups.runtime.redis_server import RedisServer
from tango_groups.runtime.tango_db import TangoDatabaseServer


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_and_ends_its_sequence(stop: signal.Signals) -> None:
    with RedisServer() as data, TangoDatabaseServer() as database:
        load_config(sequence_manager_config("1", 1, {"RedisURL": data.url}),
                    database.tango_host, update=True)
        server = DeviceServer("1", database.tango_host).start()
        try:
            db_name = server.proxy(server.devices[0]).Start("interrupted")
            server._process.send_signal(stop)
            assert server._process.wait(20) == 0
            log = server.log_path.read_text()
            assert "unforseen" not in log and "Traceback" not in log, log
            assert f"sequence {db_name} ended KILLED: the device stops" in log, log
        finally:
            server.stop()
        client = redis.Redis.from_url(data.url, db=1)
        assert get_node(db_name, connection=client).info["state"] == "KILLED"
        assert client.xlen(db_name + "_end") == 1
