"""The SequenceManager's channel attributes: one Tango attribute per declared custom channel.

What a channel attribute holds, and what its events carry, is bounded: the last points of the
channel in the current (or last) sequence, at most ``window`` points and at most
``WINDOW_BYTES`` of data (so an emit costs the same into a channel of ten points or of a million,
and the device's memory does not grow with the sequence). Each emit pushes a change event with
that window (Taurus plots and trends show the newest points) and a data-ready event counting the
emits. The whole history stays in Redis: a Bliss reader, ``tango_groups.bliss1.node`` or
``tango-groups listen`` read every point.

A scalar channel is a SPECTRUM attribute (one value per point); a channel of points of shape
``[n]`` or ``[n, m]`` is an IMAGE attribute with one row per point (points of ``[n, m]`` are
flattened).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy
from tango import AttrDataFormat, AttrWriteType
from tango.server import attribute

from tango_groups.data.channel import ChannelSpec

__all__ = ["WINDOW_BYTES", "PointWindow", "channel_attribute", "same_channel"]

MAX_POINTS = 100_000_000  # max_dim of a channel attribute (Tango's limit, not a memory budget)
WINDOW_BYTES = 16 * 2**20  # data of one channel attribute at most (16 MiB)
TANGO_TYPES = {"b": "DevBoolean", "f4": "DevFloat", "f8": "DevDouble", "i1": "DevShort",
               "i2": "DevShort", "i4": "DevLong", "i8": "DevLong64", "u1": "DevUChar",
               "u2": "DevUShort", "u4": "DevULong", "u8": "DevULong64"}


def _tango_type(dtype: Any) -> str:
    dtype = numpy.dtype(dtype)
    return TANGO_TYPES["b" if dtype.kind == "b" else f"{dtype.kind}{dtype.itemsize}"]


def same_channel(declared: ChannelSpec | None, shown: ChannelSpec) -> bool:
    """Whether a sequence's channel is the one an attribute shows (dtype, shape and unit)."""
    return declared is not None and (numpy.dtype(declared.dtype), declared.shape,
                                     declared.unit) == (numpy.dtype(shown.dtype), shown.shape,
                                                        shown.unit)


def channel_attribute(spec: ChannelSpec, window: int, fget: Callable[..., None]) -> attribute:
    """The attribute of channel ``spec`` (read by ``fget``)."""
    image = bool(spec.shape)
    width = math.prod(spec.shape) if image else MAX_POINTS
    shape = f" of points {list(spec.shape)} (one row per point)" if image else ""
    return attribute(
        name=spec.name, dtype=_tango_type(spec.dtype),
        dformat=AttrDataFormat.IMAGE if image else AttrDataFormat.SPECTRUM,
        max_dim_x=width, max_dim_y=max(MAX_POINTS // width, 1) if image else 0,
        access=AttrWriteType.READ, unit=spec.unit or "", label=spec.name,
        doc=f"Custom channel {spec.name} ({numpy.dtype(spec.dtype).name}{shape}): the last "
            f"{window} points emitted in the current (or last) sequence (all of them are in "
            "Redis)",
        fget=fget)


class PointWindow:
    """The last points of one channel (see the module docstring); not thread-safe."""

    def __init__(self, spec: ChannelSpec, window: int) -> None:
        self.dtype = numpy.dtype(spec.dtype)
        self.shape = spec.shape
        self.size = max(1, min(window, WINDOW_BYTES // (self.dtype.itemsize
                                                        * math.prod(self.shape))))
        self._blocks: list[numpy.ndarray] = []
        self._count = 0

    def clear(self) -> None:
        self._blocks, self._count = [], 0

    def append(self, block: numpy.ndarray) -> None:
        self._blocks.append(block[-self.size:])
        self._count += len(self._blocks[-1])
        while self._count - len(self._blocks[0]) >= self.size:  # the oldest block is not shown
            self._count -= len(self._blocks.pop(0))

    def value(self) -> numpy.ndarray:
        """The window as the attribute shows it: a new array (the kept blocks are never written
        to, so it may be pushed later)."""
        if not self._blocks:
            points = numpy.empty((0,) + self.shape, dtype=self.dtype)
        else:
            points = numpy.concatenate(self._blocks)[-self.size:]
            self._blocks, self._count = [points], len(points)
        return points if points.ndim <= 2 else points.reshape(
            len(points), -1 if len(points) else math.prod(self.shape))
