"""The seed's sequence in a gevent-patched process, followed live by another greenlet.

    python gevent_sequence.py REDIS_URL SESSION

Bliss sessions, Flint and blissdata-based online analysis run monkey-patched
(``gevent.monkey.patch_all()``). One greenlet runs the seed's sequence with custom channels while
another follows the session with ``walk_events(wait=True)`` until the END_SCAN of the sequence
and its scans, and a third ticks every 10 ms. gevent's monitor thread reports every time the loop
was held longer than ``GEVENT_MAX_BLOCKING_TIME`` (set by the test). Prints one JSON object: the
events followed, the
longest gap between ticks, and the blocked reports.
"""

from gevent import monkey

monkey.patch_all()

import json
import sys
import time

import gevent
import gevent.events
import seed_examples as seed  # tests/
from zope.event import subscribers  # gevent's own event bus

from tango_groups.bliss1.node import get_session_node
from tango_groups.session import Session

blocked: list[float] = []
subscribers.append(lambda event: blocked.append(event.blocking_time)
                   if isinstance(event, gevent.events.EventLoopBlocked) else None)


def follow(session_name: str, events: list[list[str]]) -> None:
    """Until the END_SCAN of the sequence and of its two scans (one round of events may carry
    the sequence's before its last scan's)."""
    for event, node, _ in get_session_node(session_name).walk_events(wait=True):
        events.append([event.name, node.type])
        if (["END_SCAN", "scan_group"] in events
                and events.count(["END_SCAN", "scan"]) == 2):
            return


def tick(gaps: list[float], stop: gevent.event.Event) -> None:
    last = time.monotonic()
    while not stop.is_set():
        gevent.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


def main() -> None:
    session = Session(sys.argv[2], redis_url=sys.argv[1]).setup()
    events: list[list[str]] = []
    gaps: list[float] = []
    stop = gevent.event.Event()
    ticker = gevent.spawn(tick, gaps, stop)
    follower = gevent.spawn(follow, session.name, events)
    gevent.sleep(0.1)  # the follower is waiting in Redis before the sequence starts
    runner = gevent.spawn(seed.sequence_with_custom_channels, session.config.get("diode"))
    seq, *_ = runner.get(timeout=60)
    follower.get(timeout=30)
    stop.set()
    ticker.join(timeout=5)
    print(json.dumps({"events": events, "max_gap": max(gaps), "blocked": blocked,
                      "sequence": seq.node.db_name, "monitor": gevent.config.monitor_thread}))
    session.close()


if __name__ == "__main__":
    main()
