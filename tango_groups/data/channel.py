"""Channel nodes being written: what a channel declares, and how its points are checked and stored.

Points go to ``{channel}_data`` with position IDs: the entry holding points ``i..i+n-1`` has the ID
``{i+1}-0`` and ``__NPOINTS__`` ``n``; a single point is stored as the point itself, a block as an
array of shape ``(n,) + shape``. Data is converted to the channel's dtype without silent loss
(a fraction into an integer channel, an overflow, text into numbers are refused) before anything is
written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy
import redis

from . import encoding, keys
from .events import channel_data, id_ms, npoints

__all__ = ["ChannelDataError", "ChannelSpec", "ChannelWriter", "emit_blocks"]


class ChannelDataError(ValueError):
    """Points that do not fit a channel's dtype or shape; nothing was written."""


@dataclasses.dataclass(frozen=True)
class ChannelSpec:
    """What a channel node declares: a device path below the scan and a channel description."""

    device: tuple[str, ...]  # device containers from the scan down, e.g. ("timer", "diode_ctrl")
    name: str  # short name: the node's local name
    dtype: Any
    shape: tuple[int, ...] = ()
    unit: str | None = None
    fullname: str | None = None  # defaults to "{last device}:{name}"
    node_type: str = "channel"

    @property
    def channel_fullname(self) -> str:
        if self.fullname is not None:
            return self.fullname
        return f"{self.device[-1]}:{self.name}" if self.device else self.name

    def points(self, data: Any) -> numpy.ndarray:
        """``data`` as a block of points of this channel's dtype and shape (Bliss's emit shaping).

        Accepts one point (ndim == len(shape)) or a block (ndim == len(shape) + 1). Raises
        ``ChannelDataError`` when the values do not fit the dtype (overflow, a fraction for an
        integer channel, text for a number) or the shape does not match.
        """
        shape = tuple(self.shape)
        try:
            block = _convert(data, numpy.dtype(self.dtype))
        except (TypeError, ValueError) as error:
            raise ChannelDataError(f"channel {self.channel_fullname!r}: {error}") from None
        if block.ndim == len(shape):
            block = block.reshape((1,) + block.shape)
        if block.ndim != len(shape) + 1 or block.shape[1:] != shape:
            raise ChannelDataError(
                f"channel {self.channel_fullname!r} takes points of shape {shape} (one point) "
                f"or blocks of shape (n,)+{shape}, not data of shape {numpy.shape(data)}"
            )
        return block


class ChannelWriter:
    """Appends points to one channel's ``_data`` stream with position IDs (``{index+1}-0``)."""

    def __init__(self, client: redis.Redis, db_name: str, spec: ChannelSpec) -> None:
        self.client = client
        self.db_name = db_name
        self.spec = spec
        self.dtype = numpy.dtype(spec.dtype) if spec.node_type == "channel" else None
        self.description = {
            "reference": spec.node_type == "node_ref_channel",
            "dtype": spec.dtype,
            "shape": tuple(spec.shape),
            "unit": spec.unit,
        }
        self._encoded_description = encoding.dumps(self.description)
        self.length = 0  # points published so far

    @property
    def name(self) -> str:
        return self.spec.name

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
        block = self.spec.points(data)
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


def _convert(data: Any, dtype: numpy.dtype) -> numpy.ndarray:
    """Convert without silent loss: integers must stay exact, floats must not overflow."""
    source = numpy.asarray(data)
    if source.dtype == dtype:
        return source
    if dtype.kind in "iub":
        if source.dtype.kind not in "iubf":
            raise ValueError(f"{source.dtype} values cannot be stored as {dtype}")
        if source.dtype.kind == "f" and not numpy.all(numpy.isfinite(source)):
            raise ValueError(f"non-finite values cannot be stored as {dtype}")
        with numpy.errstate(invalid="ignore", over="ignore"):
            converted = source.astype(dtype)
        if not numpy.array_equal(converted.astype(source.dtype) if source.size else converted,
                                 source):
            raise ValueError(f"values out of range or not integral for {dtype}")
        return converted
    if dtype.kind in "fc":
        if source.dtype.kind not in ("iubfc" if dtype.kind == "c" else "iubf"):
            raise ValueError(f"{source.dtype} values cannot be stored as {dtype}"
                             + (" (the imaginary part would be lost)"
                                if source.dtype.kind == "c" else ""))
        with numpy.errstate(over="ignore", invalid="ignore"):
            converted = source.astype(dtype)
        if numpy.any(numpy.isfinite(source) & ~numpy.isfinite(converted)):
            raise ValueError(f"values overflow {dtype}")
        return converted
    return numpy.array(data, dtype=dtype)
