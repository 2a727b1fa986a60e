"""One writer per device, with real processes: a server that stops answering (SIGSTOP) while its
sequence runs with a pending number, a second server of the same instance (``RecoveryMode``
resume) that stands by until the lease of the first expired, then takes the sequence over; the
sequence is driven and ended through the second; the first, thawed, writes nothing.

* while the first server's lease runs, the second is FAULT, its Status names the holder, its
  commands answer ``SequenceManager_LeaseHeld``;
* once it expired (``LeaseTime`` 12 s, more than a server takes to start here), the second resumes
  the sequence (RUNNING, its scans, points and pending number) and ends it DONE, every reference and
  point exactly once;
* the first, thawed (SIGCONT), sees the pending scan appear (its follower) and gets a command:
  it goes FAULT, answers ``SequenceManager_LeaseLost``, and Redis holds exactly what the second
  acknowledged (``KeySnapshot``: not one key changed).

The takeover time (SIGSTOP to the second RUNNING, and from the second answering) is printed.
"""

from __future__ import annotations

import json
import os
import signal
import time

import fault_points
import pytest
import tango
from fault_points import CHANNEL, DETECTION, RECOVERY
from models import BLISS1
from redis_checker import KeySnapshot, has_end
from sequence_server import device_view, poll, refused, spectrum
from test_faults import assert_agree, finish

from tango_groups.runtime.device_server import DeviceServer
from tango_groups.runtime.process import log_tail

pytestmark = pytest.mark.slow

LEASE_TIME = 12.0  # longer than the second server takes to start: it stands by
HELD = "SequenceManager_LeaseHeld"
LOST = "SequenceManager_LeaseLost"


def test_a_frozen_server_is_fenced_off_by_the_one_that_took_over(sequence_server) -> None:
    server = sequence_server(RecoveryMode="resume", Channels=[CHANNEL], LeaseTime=LEASE_TIME)
    expected = fault_points.reach(server, "pending",
                                  lambda s, e: assert_agree(BLISS1, s, e, running=True))
    first_process, first = server.server, server.proxy
    waiter = BLISS1.waiter(server, expected.name)
    os.kill(first_process.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        server.server = DeviceServer(server.instance, server.tango_host).start(60)
        answered = time.monotonic()
        server._proxy = None  # the second server, through the database
        second = server.proxy
        assert second.State() == tango.DevState.FAULT, device_view(second)  # standing by
        assert "another SequenceManager" in second.Status(), second.Status()
        refused(HELD, lambda: second.EmitChannel(([5.0], [CHANNEL])))
        poll(lambda: (second.State() == tango.DevState.RUNNING
                      and second.SequenceName == expected.name), LEASE_TIME + RECOVERY,
             "the second server RUNNING the sequence", lambda: device_view(second))
        running = time.monotonic()
        print(f"takeover: {running - frozen:.2f} s after SIGSTOP (LeaseTime {LEASE_TIME} s, "
              f"the second server answered after {answered - frozen:.2f} s)")
        assert LEASE_TIME - 0.5 <= running - frozen <= LEASE_TIME + 2.0
        assert not has_end(server.client, expected.name)
        assert_agree(BLISS1, server, expected, running=True)
        finish(BLISS1, server, expected)  # the pending scan runs, End: DONE, all exactly once
        assert waiter.released(DETECTION), waiter.error
        acknowledged = KeySnapshot.take(server.client)

        os.kill(first_process.pid, signal.SIGCONT)  # its follower sees the pending scan
        poll(lambda: first.State() == tango.DevState.FAULT, DETECTION,
             "the thawed first server FAULT", lambda: device_view(first))
        status = first.Status()
        assert "took over this device's sequences" in status and "Init" in status, status
        refused(LOST, lambda: first.EmitChannel(([7.0], [CHANNEL])))
        refused(LOST, lambda: first.AddScan(expected.spare))
        refused(LOST, lambda: first.Start(json.dumps({"channels": [CHANNEL]})))
        assert KeySnapshot.take(server.client).diff(acknowledged) == []
        server.logs.append(log_tail(first_process.log_path, 40))
        first_process.stop()  # a clean shutdown: it would end its sequence KILLED
        assert KeySnapshot.take(server.client).diff(acknowledged) == []
        assert second.State() == tango.DevState.ON, device_view(second)
        assert spectrum(second, CHANNEL) == expected.points
    finally:
        waiter.close()
        if first_process.pid is not None:  # still there: a failure stopped the test
            os.kill(first_process.pid, signal.SIGCONT)
            first_process.stop()
