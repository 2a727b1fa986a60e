"""Channel nodes being written: a channel's place in the node tree, and its ``_data`` stream.

Points go to ``{channel}_data`` with position IDs: the entry holding points ``i..i+n-1`` has the ID
``{i+1}-0`` and ``__NPOINTS__`` ``n``; a single point is stored as the point itself, a block as an
array of shape ``(n,) + shape`` (checked and converted by ``ChannelSpec.points`` first).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy
import redis

from ..data.channel import ChannelSpec
from . import encoding, keys
from .events import channel_data, id_ms, npoints

__all__ = ["ChannelNode", "ChannelWriter", "emit_blocks"]


@dataclasses.dataclass(frozen=True)
class ChannelNode:
    """A channel node: its device path below the scan, its local name and the description."""

    device: tuple[str, ...]  # device containers from the scan down, e.g. ("timer", "diode_ctrl")
    name: str  # short name: the node's local name
    dtype: Any
    shape: tuple[int, ...] = ()
    unit: str | None = None
    fullname: str | None = None  # defaults to "{last device}:{name}"
    node_type: str = "channel"

    @classmethod
    def at(cls, device: tuple[str, ...], spec: ChannelSpec) -> ChannelNode:
        """The node of channel ``spec`` below ``device`` (its local name: the short name)."""
        return cls(tuple(device), spec.short_name, spec.dtype, tuple(spec.shape), spec.unit,
                   fullname=spec.name)

    @property
    def channel_fullname(self) -> str:
        if self.fullname is not None:
            return self.fullname
        return f"{self.device[-1]}:{self.name}" if self.device else self.name

    @property
    def spec(self) -> ChannelSpec:
        """The channel as declared (model-neutral: fullname, dtype, shape, unit)."""
        return ChannelSpec(self.channel_fullname, self.dtype, tuple(self.shape), self.unit)

    def points(self, data: Any) -> numpy.ndarray:
        """``ChannelSpec.points``: ``data`` checked and shaped as a block of this channel."""
        return self.spec.points(data)


class ChannelWriter:
    """Appends points to one channel's ``_data`` stream with position IDs (``{index+1}-0``)."""

    def __init__(self, client: redis.Redis, db_name: str, node: ChannelNode) -> None:
        self.client = client
        self.db_name = db_name
        self.node = node
        self.dtype = numpy.dtype(node.dtype) if node.node_type == "channel" else None
        self.description = {
            "reference": node.node_type == "node_ref_channel",
            "dtype": node.dtype,
            "shape": tuple(node.shape),
            "unit": node.unit,
        }
        self._encoded_description = encoding.dumps(self.description)
        self.length = 0  # points published so far

    @property
    def name(self) -> str:
        return self.node.name

    def queue_points(self, pipe: redis.client.Pipeline, block: numpy.ndarray | Sequence) -> int:
        """Queue one XADD of a checked block; returns its number of points (0: nothing queued).

        Call ``commit(n)`` once the pipeline executed, so the next index is right.
        """
        npoints = len(block)
        if npoints == 0:
            return 0
        payload = block[0] if npoints == 1 else block
        pipe.xadd(
            self.db_name + keys.DATA,
            {
                "__EVENT__": "CHANNELDATA",
                "__DESC__": self._encoded_description,
                "__NPOINTS__": npoints,
                "__DATA__": encoding.dumps(payload),
            },
            id=f"{self.length + 1}-0",
        )
        return npoints

    def resync(self) -> int:
        """Re-read how many points Redis holds (after a write whose outcome is unknown: a
        timed-out request may land later) and continue from there; returns that number."""
        last = self.client.xrevrange(self.db_name + keys.DATA, count=1)
        self.length = id_ms(last[0][0]) - 1 + npoints(last[0][1]) if last else 0
        return self.length

    def read(self, from_index: int) -> numpy.ndarray | list:
        """The points stored from ``from_index`` on, which must start an entry (the length before
        a write of ours): what a write whose outcome was unknown left in Redis."""
        entries = self.client.xrange(self.db_name + keys.DATA, min=f"{from_index + 1}-0")
        return channel_data(entries).data

    def emit(self, data: Any) -> numpy.ndarray:
        """Check and publish ``data`` (one round trip); returns the block written, converted to
        the channel's dtype and shaped ``(n,) + shape``."""
        block = self.node.points(data)
        emit_blocks({self: block})
        return block


def emit_blocks(blocks: Mapping[ChannelWriter, Any],
                then: Callable[[redis.client.Pipeline], None] | None = None) -> None:
    """Publish checked blocks of one or more channels in one round trip (with what ``then``
    queues after them, if given).

    Not thread-safe for one channel: the entry IDs are positions, so points of a channel must be
    published from one thread at a time; ``Sequence`` and the ``SequenceManager`` serialise
    their writes.
    """
    if not blocks:
        return
    client = next(iter(blocks)).client
    with client.pipeline(transaction=False) as pipe:
        counts = {channel: channel.queue_points(pipe, block) for channel, block in blocks.items()}
        if then is not None:
            then(pipe)
        if any(counts.values()) or then is not None:
            pipe.execute()
    for channel, count in counts.items():
        channel.length += count
