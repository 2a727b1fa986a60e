"""The Tango side of the benchmarks: the anchor device, device servers, change-event clocks.

* ``AnchorDevice``: a plain ``tango.server.Device`` (synchronous, as ours) with a void command, a
  ``DevVarDoubleArray`` command and a command pushing a change event of a spectrum attribute
  (``change_event_implemented=True, change_event_detect=False``): the devices the "Tango" table of
  the performance anchors (``spec/performance_anchors.md`` of the shared design notes) was
  measured with.
* ``start_device``: a device server in its own forked process (``DeviceTestContext(...,
  process=True)``), stopped when the caller's ``ExitStack`` closes (also on errors).
* ``Events`` and ``latencies``: change events stamped with ``perf()`` in this (unpatched,
  synchronous) client's callback; waits are queue waits with a deadline, never sleeps.
* ``Sequences``: Start/End of sequences with one custom channel on a SequenceManager.
"""

from __future__ import annotations

import contextlib
import json
import queue
from collections.abc import Callable
from typing import Any

import numpy
import tango
from tango import AttrWriteType, EventType
from tango.server import Device, attribute, command
from tango.test_context import DeviceTestContext

from .common import perf

__all__ = ["CHANNEL", "AnchorDevice", "Events", "Sequences", "latencies", "start_device"]

CHANNEL = "sum"  # the custom channel with a Tango attribute (the device's default Channels)
EVENT_TIMEOUT = 5.0  # seconds a change event may take before the row fails


class AnchorDevice(Device):
    """The anchor: a plain pytango device doing nothing but what the commands carry."""

    def init_device(self) -> None:
        super().init_device()
        self._values = numpy.zeros(1)

    @attribute(dtype=(float,), max_dim_x=10_000_000, access=AttrWriteType.READ,
               change_event_implemented=True, change_event_detect=False)
    def values(self) -> numpy.ndarray:
        return self._values

    @command
    def Void(self) -> None:
        pass

    @command(dtype_in="DevVarDoubleArray", dtype_out=int)
    def Doubles(self, values: numpy.ndarray) -> int:
        return len(values)

    @command(dtype_in="DevVarDoubleArray")
    def Push(self, values: numpy.ndarray) -> None:
        self._values = values
        self.push_change_event("values", values)


def start_device(stack: contextlib.ExitStack, device_class: type[Device],
                 properties: dict[str, Any] | None = None) -> tuple[tango.DeviceProxy, int]:
    """A device server in a forked process, stopped when ``stack`` closes; its proxy (30 s
    timeout) and the server's process id."""
    context = DeviceTestContext(device_class, properties=properties or {}, process=True,
                                timeout=30, debug=0)
    proxy = context.__enter__()
    stack.callback(context.__exit__, None, None, None)
    proxy.set_timeout_millis(30_000)
    return proxy, context.thread.pid


class Events:
    """Change events of one attribute, each stamped with ``perf()`` in the client's callback."""

    def __init__(self, proxy: tango.DeviceProxy, attr: str) -> None:
        self.proxy, self.attr = proxy, attr
        self.queue: queue.Queue[tuple[float, Any]] = queue.Queue()
        self.id = proxy.subscribe_event(attr, EventType.CHANGE_EVENT, self._callback)
        self.next()  # the event every subscription starts with (the current value)
        self.drain()

    def _callback(self, event: tango.EventData) -> None:
        self.queue.put((perf(), event.errors if event.err else None))

    def next(self) -> float:
        """When the next event arrived (waits up to ``EVENT_TIMEOUT``)."""
        try:
            stamp, errors = self.queue.get(timeout=EVENT_TIMEOUT)
        except queue.Empty:
            raise RuntimeError(f"no change event of {self.attr} within {EVENT_TIMEOUT} s") from None
        if errors:
            raise RuntimeError(f"error event on {self.attr}: {errors[0].desc}")
        return stamp

    def drain(self) -> int:
        """Forget the events received so far; returns how many."""
        count = 0
        while not self.queue.empty():
            self.queue.get_nowait()
            count += 1
        return count

    def close(self) -> None:
        self.proxy.unsubscribe_event(self.id)


def latencies(command: Callable[[], Any], events: Events, n: int) -> list[float]:
    """command -> its change event in our callback, one at a time (no sleeps: queue waits)."""
    samples = []
    for _ in range(n):
        t0 = perf()
        command()
        samples.append(events.next() - t0)
    return samples


class Sequences:
    """Start/End sequences with the ``sum`` channel on our device."""

    def __init__(self, proxy: tango.DeviceProxy) -> None:
        self.proxy = proxy
        self.running = False

    def start(self) -> None:
        self.end()
        self.proxy.command_inout("Start", json.dumps({"title": "bench",
                                                      "channels": [{"name": CHANNEL}]}))
        self.running = True

    def end(self) -> None:
        if self.running:
            self.running = False
            self.proxy.command_inout("End")
