"""Following a changing set of Redis streams in rounds, the way blissdata's DataStreamReader does.

Each subscribed stream has a read position (exclusive: entries with a larger ID are read next) and
a priority (blissdata's: ``_children_list`` 0, ``_prepared`` 1, ``_data`` 2, ``_end`` 3). One round
is one ``XREAD`` over every subscribed stream, in priority order (subscription order within a
priority). Of the streams that returned entries only those sharing the best priority are handed
to the consumer; the others keep their position and are read again next round. So entries that
are available together come out as children before PREPARED before data before END.

The consumer may subscribe and unsubscribe streams while handling a round; new streams are read
from the next round on. Without ``wait`` the rounds end once a round skipped nothing and changed no
subscription (everything reachable was drained); with ``wait`` the ``XREAD`` blocks for at most
``BLOCK_MS`` at a time, so that ``stop()`` (callable from any thread) is honoured quickly. Nothing
here spawns threads or greenlets: under gevent monkey-patching the blocking ``XREAD`` simply yields
to the hub. Readers never write to Redis.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator, Iterator
from typing import Any, Generic, TypeVar

import redis

from .events import StreamEntry, UnreadableEntryError

__all__ = ["BLOCK_MS", "Batch", "StreamReader", "Subscription", "WalkIterator"]

BLOCK_MS = 500  # longest single XREAD block: the latency of stop()

T = TypeVar("T")


@dataclasses.dataclass
class Subscription:
    key: str
    priority: int
    position: bytes | str  # last ID read (exclusive lower bound of the next read)
    context: Any  # whatever the consumer wants back with the entries (the node, the stream kind)


Batch = list[tuple[Subscription, list[StreamEntry]]]


class StreamReader:
    """Subscriptions and rounds of reading (one consumer, one Redis client)."""

    def __init__(self, client: redis.Redis, block_ms: int = BLOCK_MS) -> None:
        self.client = client
        self.block_ms = block_ms
        self._subscriptions: dict[str, Subscription] = {}
        self._changed = False
        self._stop = threading.Event()

    def subscribe(self, key: str, priority: int, position: bytes | str, context: Any) -> None:
        """Follow ``key`` from after ``position`` (already followed streams keep their position)."""
        if key not in self._subscriptions:
            self._subscriptions[key] = Subscription(key, priority, position, context)
            self._changed = True

    def unsubscribe_prefix(self, prefix: str) -> None:
        """Stop following every stream whose name starts with ``prefix``."""
        for key in [k for k in self._subscriptions if k.startswith(prefix)]:
            del self._subscriptions[key]
            self._changed = True

    def is_subscribed(self, subscription: Subscription) -> bool:
        return self._subscriptions.get(subscription.key) is subscription

    def stop(self) -> None:
        """End the rounds at the next opportunity (thread-safe)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def rounds(self, wait: bool) -> Iterator[Batch]:
        """Yield, round after round, the best-priority streams that returned entries."""
        while not self.stopped and self._subscriptions:
            ordered = sorted(self._subscriptions.values(), key=lambda s: s.priority)
            response = self.client.xread(
                {s.key: s.position for s in ordered}, block=self.block_ms if wait else None)
            received = {key.decode(): entries for key, entries in response or () if entries}
            if not received:
                if wait:
                    continue
                return
            best = min(s.priority for s in ordered if s.key in received)
            batch = [(s, received[s.key]) for s in ordered
                     if s.key in received and s.priority == best]
            skipped = len(batch) < len(received)
            for subscription, entries in batch:
                subscription.position = entries[-1][0]
            self._changed = False
            yield batch
            if not wait and not skipped and not self._changed:
                return


class WalkIterator(Generic[T]):
    """What the walks return: an iterator that can be stopped.

    ``stop()`` may be called from any thread (or greenlet): nothing is yielded after it returns in
    the consuming thread, and a consumer blocked waiting for data returns within ``BLOCK_MS``.
    ``close()`` stops and closes the underlying generator; it is also what leaving a ``with``
    block does. An entry that cannot be decoded raises ``UnreadableEntryError`` from ``next()``
    (see ``tango_groups.bliss1.events``); calling ``next()`` again goes on after it, and
    ``with_errors()`` iterates that way.
    """

    def __init__(self, reader: StreamReader, items: Generator[T, None, None]) -> None:
        self._reader = reader
        self._items = items

    def __iter__(self) -> WalkIterator[T]:
        return self

    def __next__(self) -> T:
        item = next(self._items)
        if isinstance(item, UnreadableEntryError):  # the generator lives on: next() continues
            raise item
        return item

    def with_errors(self) -> Iterator[tuple[Any, UnreadableEntryError | None]]:
        """``(item, None)`` for every item, ``(error.event, error)`` for every entry that cannot
        be decoded: a loop over this is not ended by bad data in Redis."""
        while True:
            try:
                yield next(self), None
            except StopIteration:
                return
            except UnreadableEntryError as error:
                yield error.event, error

    def stop(self) -> None:
        self._reader.stop()

    def close(self) -> None:
        self._reader.stop()
        try:
            self._items.close()
        except ValueError:  # "generator already executing": closed from another thread,
            pass  # which stop() already handles

    def __enter__(self) -> WalkIterator[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
