"""The library stays gevent-cooperative: in a ``gevent.monkey.patch_all()`` process the seed's
sequence runs in one greenlet while another follows it with ``walk_events(wait=True)``, and the
loop is never held (gevent's own monitor thread, ``tests/unit/gevent_sequence.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent.parent
MAX_BLOCKING = 0.5  # s: a blocking Redis read holds the loop until the sequence ends (never)


def test_a_greenlet_follows_the_seed_sequence_live_without_blocking_the_loop(
        redis_url, redis_client, session_name) -> None:
    env = {**os.environ, "GEVENT_MONITOR_THREAD_ENABLE": "true",
           "GEVENT_MAX_BLOCKING_TIME": str(MAX_BLOCKING),
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(TESTS / "unit" / "gevent_sequence.py"), redis_url,
                          session_name], check=False, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["monitor"] is True
    assert result["blocked"] == [], run.stderr
    assert result["max_gap"] < MAX_BLOCKING
    events = result["events"]
    # live: the sequence and both scans were followed from their creation to the sequence's end
    assert ["NEW_NODE", "scan_group"] in events and ["END_SCAN", "scan_group"] in events
    assert events.count(["NEW_NODE", "scan"]) == 2 and events.count(["END_SCAN", "scan"]) == 2
    assert ["NEW_DATA", "channel"] in events
