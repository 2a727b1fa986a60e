"""Simulated counters and ``loopscan``: real scans in Redis without Bliss or hardware.

``loopscan(npoints, count_time, *counters)`` writes what Bliss's loopscan writes: a ``timer``
device with ``elapsed_time`` and ``epoch`` channels (seconds) and, below it, one sampling-controller
device per counter controller (``simulation_diode_sampling_controller:diode`` for the ``diode``).
Each point takes ``count_time`` seconds, as counting would; the counter values are random, like
Bliss's simulated diodes.

Importing this module registers its counters in the session configuration (``Config.register``):
``session.config.get("diode")`` then returns the ``diode`` of ``COUNTERS``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy

from ..bliss1.channel import ChannelNode
from ..session import Config, Session
from .scan import Scan

__all__ = ["COUNTERS", "SimulationCounter", "loopscan"]


@dataclasses.dataclass(frozen=True)
class SimulationCounter:
    """A counter read by a simulated sampling controller; ``read()`` returns one value."""

    name: str
    controller: str = "simulation_diode_sampling_controller"
    low: float = -100.0
    high: float = 100.0
    unit: str | None = None

    @property
    def fullname(self) -> str:
        return f"{self.controller}:{self.name}"

    def read(self, rng: numpy.random.Generator) -> float:
        return float(rng.integers(self.low, self.high, endpoint=True))


COUNTERS = {
    counter.name: counter
    for counter in (
        SimulationCounter("diode"),
        SimulationCounter("diode2"),
        SimulationCounter("diode3"),
        SimulationCounter("sim_ct_gauss", "simulation_counter_controller", 0, 1000),
    )
}
Config.register(**COUNTERS)


def loopscan(
    npoints: int,
    count_time: float,
    *counters: SimulationCounter,
    name: str = "loopscan",
    title: str | None = None,
    scan_info: dict[str, Any] | None = None,
    save: bool = True,
    run: bool = True,
    session: Session | None = None,
) -> Scan:
    """A time scan of ``npoints`` points of ``count_time`` seconds; runs at once unless
    ``run=False``."""
    if npoints < 1 or count_time < 0:
        raise ValueError("loopscan needs npoints >= 1 and count_time >= 0")
    specs = [ChannelNode(("timer",), "elapsed_time", float, unit="s"),
             ChannelNode(("timer",), "epoch", float, unit="s")]
    specs += [ChannelNode(("timer", c.controller), c.name, float, unit=c.unit) for c in counters]
    rng = numpy.random.default_rng()

    def acquisition(scan: Scan) -> None:
        start = time.time()
        for index in range(npoints):
            time.sleep(max(0.0, start + (index + 1) * count_time - time.time()))
            now = time.time()
            scan.emit({"timer:elapsed_time": now - start, "timer:epoch": now,
                       **{c.fullname: c.read(rng) for c in counters}})

    scan = Scan(
        name, specs, acquisition,
        title=title or f"{name} {npoints} {count_time}",
        scan_info={"npoints": npoints, "count_time": count_time, **(scan_info or {})},
        save=save, session=session,
    )
    if run:
        scan.run()
    return scan
