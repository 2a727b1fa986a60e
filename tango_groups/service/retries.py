"""Retries that make a repeated command idempotent, whatever the data model.

A write that failed without telling whether it landed (a timeout: the request may still reach
Redis) is *uncertain*. Before the next write the service re-reads what Redis holds of the open
sequence and says whether that write landed (``Retries.landed``); a client repeating the same
request (same ``RetryKey``: kind, target and what it wrote) then gets its answer without a
second write (``Retries.retried``), and any other request on that target forgets it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection
from typing import Any

import numpy

__all__ = ["Points", "Retries", "RetryKey", "RetryKind"]


class RetryKind(enum.Enum):
    ADD = "add"  # a reference to a scan
    EMIT = "emit"  # points of a custom channel


@dataclasses.dataclass(frozen=True)
class RetryKey:
    """What a write is, to recognise a client repeating it: its kind, its target (the scan
    reference, the channel) and what it wrote (``Points``; None for a reference)."""

    kind: RetryKind
    target: Any
    payload: Any = None


class Points:
    """The points of an emit, in a ``RetryKey``: compared (byte for byte) only when a request
    repeats one on the same channel."""

    def __init__(self, block: numpy.ndarray) -> None:
        self.block = block

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Points) and (self.block.dtype, self.block.shape) == (
            other.block.dtype, other.block.shape) and self.block.tobytes() == other.block.tobytes()

    __hash__ = None  # type: ignore[assignment]


class Retries:
    """The uncertain write of a service (at most one: the next write waits for the re-read)."""

    def __init__(self) -> None:
        self.uncertain: RetryKey | None = None
        self._landed = False

    def failed(self, key: RetryKey) -> None:
        """The write of ``key`` failed without telling whether it landed."""
        self.uncertain, self._landed = key, False

    def landed(self, landed: bool) -> None:
        """The re-read of the open sequence found the uncertain write in Redis, or not."""
        self._landed = landed

    def found(self, references: Collection[Any], channels: Collection[str]) -> None:
        """What the re-read found beyond what was known: the scans referenced (by each name a
        client may give: number, name or key) and the channels that got points."""
        uncertain = self.uncertain
        if uncertain is not None:
            self.landed(uncertain.target in (
                references if uncertain.kind is RetryKind.ADD else channels))

    def retried(self, key: RetryKey) -> bool | None:
        """For a request on the target of the uncertain write: whether it repeats that request
        and the write landed (the repeat must not write again). None otherwise."""
        uncertain = self.uncertain
        if uncertain is None or (uncertain.kind, uncertain.target) != (key.kind, key.target):
            return None
        self.uncertain = None
        return uncertain == key and self._landed
