"""``Pushes``: the SequenceManager's event dispatcher, the one thread that pushes Tango events.

The device queues (attribute, value) pairs the moment the service reports a change (so events
keep the order of the changes); this thread pushes them while holding the device monitor, so that
no push races a read of the same attribute inside libtango (pushing from other threads without
the monitor is what made the first, gevent-based device segfault).

A change made by a command is pushed by the command's own thread, which holds the monitor
already (``command``), as long as nothing queued before it waits: the common case costs no
thread switch, and the order of the events stays the order of the changes.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
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
        self._push = push
        self._queued = 0  # put in the queue and not pushed yet
        self._count_lock = threading.Lock()
        self._command_thread: int | None = None  # the thread running a command, monitor held
        self._thread = threading.Thread(target=self._run, args=(device,),
                                        name="SequenceManager-events", daemon=True)
        self._thread.start()
        self._device = device

    @contextlib.contextmanager
    def command(self) -> Iterator[None]:
        """Around a command (Tango runs it holding the device monitor): its changes are pushed
        from its own thread when nothing queued is waiting."""
        self._command_thread = threading.get_ident()
        try:
            yield
        finally:
            self._command_thread = None

    def put(self, name: str, value: Any) -> None:
        with self._count_lock:
            direct = self._command_thread == threading.get_ident() and not self._queued
            if not direct:
                self._queued += 1
                self._queue.put((name, value))
        if direct and self._open:
            self._push_one(name, value)

    def _push_one(self, name: str, value: Any) -> None:
        try:
            self._push(name, value)
        except DevFailed as error:  # e.g. an attribute removed meanwhile
            logger.debug("push of %s skipped: %s", name, error.args[0].desc)

    def _run(self, device: Device) -> None:
        while (item := self._queue.get()) is not None:
            # nothing to push before the server is up (no client can have subscribed), and
            # pushing while cppTango initialises the server can deadlock with it
            if self._open and not Util.instance().is_svr_starting():
                with AutoTangoMonitor(device):
                    if self._open:
                        self._push_one(*item)
            with self._count_lock:
                self._queued -= 1

    def close(self, wait: bool) -> None:
        with AutoTangoMonitor(self._device):  # no push is under way once we hold it
            self._open = False
        self._queue.put(None)
        if wait:
            self._thread.join()
