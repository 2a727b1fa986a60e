"""Scans a sequence waits for that another process writes: followed in Redis until PREPARED.

A scan added to a sequence *by number* before it runs (a Tango client's ``AddScan 57`` while
Bliss is still counting down) must be referenced the moment it reaches PREPARED. ``NumberWatch``
follows, in daemon threads (``Follower``), what can announce it:

* a number already registered (its node exists, not prepared yet): that scan's PREPARED stream;
* a number not registered yet (not allocated, or allocated and its node not written yet): the
  new scans of the scan-saving container (one follower serves every such number). To leave no
  gap, the container is followed *before* the number is looked up again.

Every scan seen prepared is handed to ``on_prepared(facts)``; the sequence decides whether it is
one it waits for (``tango_groups.scanning.sequence``, which gets a ``NumberWatch`` from
``bliss1.model``). An entry that cannot be decoded, or a scan whose info the allow-list refuses,
is logged and skipped; a Redis failure ends the thread after ``on_error(error)``, and ``restart``
follows the numbers again once Redis answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from ..data.connection import Redis, RedisError
from .lookup import ScanFacts, UnreadableScan, find_scan, scan_facts
from .node import DataNode, EventType, WalkIterator, get_node

__all__ = ["Follower", "NumberWatch"]

logger = logging.getLogger(__name__)


class Follower:
    """``on_prepared(node)`` for every scan ``walk`` sees prepared; ``on_error(error)`` once if
    Redis fails (the thread then ends)."""

    def __init__(self, walk: WalkIterator, on_prepared: Callable[[DataNode], None],
                 on_error: Callable[[RedisError], None]) -> None:
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
                    except RedisError:
                        raise
                    except Exception:  # one unreadable scan must not stop the others
                        logger.exception("cannot reference %s", event.node.db_name)
        except RedisError as error:
            self._on_error(error)
        finally:
            self._walk.close()

    def stop(self) -> None:
        """Ask the walk to stop (it ends within its block time); does not wait."""
        self._walk.stop()


class NumberWatch:
    """Follows scan numbers of ``container`` until they are prepared (see the module docstring).

    ``client`` looks scans up; ``watch_client`` blocks in the walks (its socket timeout must
    exceed their block time). Not thread-safe: its owner serialises ``follow``, ``restart`` and
    ``stop`` (the followers' callbacks run in their own threads)."""

    def __init__(self, client: Redis, watch_client: Redis, container: Callable[[], str],
                 on_prepared: Callable[[ScanFacts], None],
                 on_error: Callable[[RedisError], None]) -> None:
        self._client = client
        self._watch_client = watch_client
        self._container = container  # the container's db_name, created when missing
        self._on_prepared = on_prepared
        self._on_error = on_error
        self._followers: list[Follower] = []
        self._container_follower: Follower | None = None

    def follow(self, number: int, facts: ScanFacts | None = None) -> None:
        """Follow ``number`` (``facts``: what a lookup just found of it); calls ``on_prepared``
        right away when it is prepared already."""
        if facts is None:
            self._follow_container()
            facts = find_scan(self._client, self._container(), number)
            if facts is None:
                return  # the container's follower sees it register, then prepare
        if facts.prepared:
            self._on_prepared(facts)
        else:
            self._add(get_node(facts.db_name, connection=self._watch_client).walk_events(
                include_filter="scan", wait=True))

    def restart(self, numbers: Iterable[int]) -> None:
        """Follow ``numbers`` again from what Redis holds now (after Redis failed, on resume)."""
        self.stop()
        for number in numbers:
            self.follow(number)

    def stop(self) -> None:
        """Stop following (the threads end within the walks' block time; not waited for: their
        callbacks may be waiting for the owner's lock, and find the numbers resolved)."""
        for follower in self._followers:
            follower.stop()
        self._followers.clear()
        self._container_follower = None

    def _follow_container(self) -> None:
        if self._container_follower is None or not self._container_follower.alive:
            walk = get_node(self._container(), connection=self._watch_client
                            ).walk_on_new_events(include_filter="scan", wait=True)
            self._container_follower = self._add(walk)

    def _add(self, walk: WalkIterator) -> Follower:
        follower = Follower(walk, self._prepared, self._on_error)
        self._followers.append(follower)
        return follower

    def _prepared(self, node: DataNode) -> None:
        try:
            facts = scan_facts(self._client, node.db_name)
        except UnreadableScan as error:
            logger.warning("ignoring %s", error)
            return
        if facts is not None:
            self._on_prepared(facts)
