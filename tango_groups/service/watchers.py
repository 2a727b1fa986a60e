"""The service's periodic thread: ``Periodic`` calls a function every ``period`` seconds until
stopped (the health check of the Redis link). Pending scans are followed by the sequence itself
(``tango_groups.bliss1.pending``).

The threads never touch Tango: the service reports through its callback, and the device pushes
events from its own dispatcher thread, under the device's monitor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Periodic"]

logger = logging.getLogger(__name__)


class Periodic:
    """``action()`` every ``period`` seconds in a daemon thread, from now until ``stop()``."""

    def __init__(self, action: Callable[[], object], period: float, name: str) -> None:
        self._action = action
        self._period = period
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._action()
            except Exception:  # a bug must not silence the health check for good
                logger.exception("periodic %s failed", self._thread.name)
            self._stopped.wait(self._period)

    def stop(self) -> None:
        """No further calls after the current one (does not wait for it)."""
        self._stopped.set()
