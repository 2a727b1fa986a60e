"""A simulated loopscan in the Bliss 2 model, written through blissdata 2.x as Bliss 2 writes one
(``tango-groups loopscan --data-format bliss2``): numbered by ``next_number`` in the session, a
``timer:elapsed_time`` stream and one stream per simulated counter (``controller:name``), the
points at ``count_time`` intervals, then STOPPED and CLOSED. A sequence of the session references
it by its key or its number (``AddScan``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

from ..scanning.simulation import SimulationCounter
from .store import next_number

__all__ = ["loopscan"]


def loopscan(store: DataStore, session: str, npoints: int, count_time: float,
             counters: Sequence[SimulationCounter]) -> tuple[str, int]:
    """Write one finished loopscan of ``counters`` in ``session``: (its key, its number)."""
    if npoints < 1 or count_time < 0:
        raise ValueError("loopscan needs npoints >= 1 and count_time >= 0")
    number = next_number(store, session)
    scan = store.create_scan(
        {"name": "loopscan", "number": number, "data_policy": "no_policy", "session": session},
        info={"title": f"loopscan {npoints} {count_time}", "npoints": npoints,
              "count_time": count_time})
    try:
        elapsed = scan.create_stream(Stream.make_definition("timer:elapsed_time", "float64"))
        streams = [scan.create_stream(Stream.make_definition(counter.fullname, "float64"))
                   for counter in counters]
        scan.prepare()
        scan.start()
        rng = numpy.random.default_rng()
        start = time.time()
        for index in range(npoints):
            time.sleep(max(0.0, start + (index + 1) * count_time - time.time()))
            elapsed.send(time.time() - start)
            for counter, stream in zip(counters, streams):
                stream.send(counter.read(rng))
        scan.stop()
    finally:
        scan.close()
    return scan.key, number
