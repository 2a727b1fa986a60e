"""What a channel declares in either data model, and how its points are checked.

A ``ChannelSpec`` is what a Start (or a scan) declares of a channel: its name (a ``device:short``
fullname or a plain name), dtype, shape and unit. Points are converted to the channel's dtype
without silent loss (a fraction into an integer channel, an overflow, text into numbers are
refused) and shaped into a block ``(n,) + shape`` before either model writes anything.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy

__all__ = ["ChannelDataError", "ChannelSpec"]


class ChannelDataError(ValueError):
    """Points that do not fit a channel's dtype or shape; nothing was written."""


@dataclasses.dataclass(frozen=True)
class ChannelSpec:
    """A channel as declared: ``name`` (its fullname), dtype, shape, unit."""

    name: str
    dtype: Any
    shape: tuple[int, ...] = ()
    unit: str | None = None

    @property
    def short_name(self) -> str:
        """The part after the last ``:`` (Bliss's display name)."""
        return self.name.rsplit(":", 1)[-1]

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
            raise ChannelDataError(f"channel {self.name!r}: {error}") from None
        if block.ndim == len(shape):
            block = block.reshape((1,) + block.shape)
        if block.ndim != len(shape) + 1 or block.shape[1:] != shape:
            raise ChannelDataError(
                f"channel {self.name!r} takes points of shape {shape} (one point) "
                f"or blocks of shape (n,)+{shape}, not data of shape {numpy.shape(data)}"
            )
        return block


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
