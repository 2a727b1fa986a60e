"""Clients as beamlines run them follow the device's events and live: each in its own process,
each holding a redis-py client, subscribed to the numeric spectrum attributes and the channel
attributes (one attribute each: the shape that crashed most reliably), and one that subscribes to
all of them and drives several sequences from the same process. cppTango's event consumer misreads
empty numeric arrays (``tango_groups.devices.attributes``): before the device sent them without
data, such clients died with SIGSEGV on the first ``Start``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SEQUENCES = 4
NUMERIC = ["ScanNumbers", "PendingScans", "ScanCount", "sum", "counts", "spectrum", "roi", "flag"]


def _client(device, redis_url: str, role: str, *attributes: str
            ) -> tuple[subprocess.Popen, list[str]]:
    """A client process once subscribed, and the events it printed until then."""
    client = subprocess.Popen(
        [sys.executable, str(HERE / "event_client.py"), device.trl, redis_url, role,
         str(SEQUENCES), *attributes],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    while (line := client.stdout.readline()).strip() != "READY":
        assert line, client.communicate(timeout=30)
        lines.append(line)
    return client, lines


def _values(lines: list[str]) -> dict[str, list]:
    values: dict[str, list] = {}
    for line in lines:
        event = json.loads(line)
        assert "error" not in event, event
        values.setdefault(event["attr"], []).append(event["value"])
    return values


@pytest.mark.slow
def test_clients_holding_redis_clients_follow_every_sequence_and_exit_0(device,
                                                                         redis_url) -> None:
    listeners = {name: _client(device, redis_url, "listen", name) for name in NUMERIC}
    driver, lines = _client(device, redis_url, "drive", *NUMERIC, "SequenceState")
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 0, f"the driving client exited {driver.returncode}: {err}"
    driven = _values(lines + out.splitlines())
    # every sequence started empty (events without data, read back as []) and ended
    assert driven["scannumbers"].count([]) == SEQUENCES + 1
    assert driven["pendingscans"][-2:] == [[900_000], []]
    assert driven["sequencestate"][1:] == [2, 4, 2, 5] * (SEQUENCES // 2)
    assert driven["sum"].count([]) == SEQUENCES + 1 and [1.0, 2.0] in driven["sum"]
    assert driven["counts"][-1] == [SEQUENCES - 1, SEQUENCES]
    assert driven["spectrum"][-1] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
    assert driven["roi"][-1] == [[1, 2, 3]] and driven["flag"][-1] == [True, False]
    for name, (listener, lines) in listeners.items():
        while len(lines) < SEQUENCES + 1:  # up to the last sequence's (a push per Start)
            line = listener.stdout.readline()
            if not line:
                break
            lines.append(line)
        out, err = listener.communicate(timeout=60)  # closes its stdin: it stops
        assert listener.returncode == 0, f"{name} listener exited {listener.returncode}: {err}"
        seen = _values(lines + out.splitlines())[name.lower()]
        assert all(value in driven[name.lower()] for value in seen), (name, seen)
        assert len(seen) >= SEQUENCES + 1, (name, seen)
