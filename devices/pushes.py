"""``Pushes``: the SequenceManager's event dispatcher, the one thread that pushes Tango events.

The device queues (attribute, value) pairs the moment the manager reports a change (so events
keep the order of the changes); this thread pushes them while holding the device monitor, so that
no push races a read of the same attribute inside libtango (pushing from other threads without
the monitor is what made the first, gevent-based device segfault).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from tango import AutoTangoMonitor, DevFailed, Util
from tango.server import Device

__all__ = ["Pushes"]

logger = logging.getLogger(__name__)


class Pushes:
    """Values to push, in the order they were queued, from one thread that holds the device
    monitor while it pushes. ``close`` stops it: queued values are dropped, and with ``wait`` the
    thread has ended when it returns (the device may be destroyed then)."""

    def __init__(self, device: Device, push: Callable[[str, Any], None]) -> None:
        self._queue: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self._open = True
        self._thread = threading.Thread(target=self._run, args=(device, push),
                                        name="SequenceManager-events", daemon=True)
        self._thread.start()
        self._device = device

    def put(self, name: str, value: Any) -> None:
        self._queue.put((name, value))

    def _run(self, device: Device, push: Callable[[str, Any], None]) -> None:
        while (item := self._queue.get()) is not None:
            # nothing to push before the server is up (no client can have subscribed), and
            # pushing while cppTango initialises the server can deadlock with it
            if not self._open or Util.instance().is_svr_starting():
                continue
            with AutoTangoMonitor(device):
                if self._open:
                    try:
                        push(*item)
                    except DevFailed as error:  # e.g. an attribute removed meanwhile
                        logger.debug("push of %s skipped: %s", item[0], error.args[0].desc)

    def close(self, wait: bool) -> None:
        with AutoTangoMonitor(self._device):  # no push is under way once we hold it
            self._open = False
        self._queue.put(None)
        if wait:
            self._thread.join()
