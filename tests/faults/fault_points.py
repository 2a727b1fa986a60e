"""What the fault suite (``test_faults.py``, in both data models) and ``test_lease.py`` share:
the points of a sequence where a fault strikes, what the sequence must hold there
(``Expected``), and ``reach``, which runs a sequence up to a point.

* ``started``: right after ``Start``;
* ``scan_added``: after ``AddScan`` of a finished scan;
* ``emitted``: after ``EmitChannel`` of two points;
* ``pending``: while a scan number added before its scan exists is pending.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

from sequence_server import CLIENT_TIMEOUT_MS, SequenceServer

POINTS = ("started", "scan_added", "emitted", "pending")
CHANNEL = "x"  # float64 points, declared in the Channels property: it has its attribute
LOST = "SequenceManager_SequenceLost"
DETECTION = 5.0  # seconds to notice a fault or a recovery: "a few health-check periods" of 0.2 s
RECOVERY = 8.0  # seconds from a server restart to the sequence closed (or resumed, bliss1)
CLIENT_TIMEOUT_S = CLIENT_TIMEOUT_MS / 1000


@dataclasses.dataclass
class Expected:
    """What the sequence must hold, in Redis and on the device."""

    name: str  # what Start returned: the db_name (bliss1), the esrf:scan: key (bliss2)
    spare: str  # a finished scan of the session, not referenced yet
    names: list[str] = dataclasses.field(default_factory=list)
    numbers: list[int] = dataclasses.field(default_factory=list)
    points: list[float] = dataclasses.field(default_factory=list)
    pending: list[int] = dataclasses.field(default_factory=list)


def reach(server: SequenceServer, point: str,
          agree: Callable[[SequenceServer, Expected], None]) -> Expected:
    """Run a sequence up to ``point``, then ``agree(server, expected)`` checks the device and
    the data agree."""
    proxy = server.proxy
    spare = server.scan()
    name = proxy.Start(json.dumps({"title": f"fault at {point}", "channels": [CHANNEL]}))
    expected = Expected(name, spare.db_name)
    steps = POINTS.index(point)
    if steps >= 1:
        done = server.scan()
        assert proxy.AddScan(done.db_name) == done.db_name
        expected.names.append(done.db_name)
        expected.numbers.append(done.scan_number)
    if steps >= 2:
        assert proxy.EmitChannel(([1.0, 2.0], [CHANNEL])) == 2
        expected.points += [1.0, 2.0]
    if steps >= 3:
        number = server.last_scan_number() + 1
        assert proxy.AddScan(str(number)) == f"pending:{number}"
        expected.pending.append(number)
    agree(server, expected)
    return expected
