"""The manager's background threads: following pending scans, and watching Redis's health.

``Follower`` runs one walk (``tango_groups.data.node`` walks block in ``XREAD`` for at most
``BLOCK_MS``) in a daemon thread and hands every PREPARED_SCAN event to a callback. An entry
that cannot be decoded, or an event that cannot be handled (a scan whose info or END the
allow-list refuses), is logged and skipped; a Redis failure ends the thread after reporting it,
and the manager starts a new follower once Redis answers again. ``Periodic`` calls a function every ``period`` seconds until stopped.

The threads never touch Tango: the manager reports through its callback, and the device pushes
events from its own dispatcher thread, under the device's monitor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from ..data.node import DataNode, EventType, WalkIterator

__all__ = ["Follower", "Periodic"]

logger = logging.getLogger(__name__)


class Follower:
    """``on_prepared(node)`` for every scan ``walk`` sees prepared; ``on_error(error)`` once if
    Redis fails (the thread then ends)."""

    def __init__(self, walk: WalkIterator, on_prepared: Callable[[DataNode], None],
                 on_error: Callable[[redis.RedisError], None]) -> None:
        self._walk = walk
        self._on_prepared = on_prepared
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name="tango_groups-follower",
                                        daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            for event, error in self._walk.with_errors():
                if error is not None:  # bad data in another scan's streams: not ours to stop
                    logger.warning("skipping an unreadable entry: %s", error)
                elif event.type is EventType.PREPARED_SCAN:
                    try:
                        self._on_prepared(event.node)
                    except redis.RedisError:
                        raise
                    except Exception:  # one unreadable scan must not stop the others
                        logger.exception("cannot reference %s", event.node.db_name)
        except redis.RedisError as error:
            self._on_error(error)
        finally:
            self._walk.close()

    def stop(self) -> None:
        """Ask the walk to stop (it ends within its block time); does not wait."""
        self._walk.stop()


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
