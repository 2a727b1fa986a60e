"""``AcquisitionChannel``: a named, typed channel of points, as Bliss's acquisition chain
declares it.

Used for the custom channels of a sequence: declared before the sequence starts (its declaration
is a ``ChannelSpec``, the one channel declaration of the package), bound to its Redis channel node
when the sequence starts, then ``emit`` publishes points (one point or a block of points).
"""

from __future__ import annotations

from typing import Any

from ..data.channel import ChannelSpec
from .model import ChannelOut


class AcquisitionChannel:
    """``AcquisitionChannel(name, dtype, shape, unit=None)``; ``name`` may be a ``device:short``
    fullname."""

    def __init__(self, name: str, dtype: Any, shape: tuple[int, ...] = (), unit: str | None = None
                 ) -> None:
        short_name = name.rsplit(":", 1)[-1]
        if not short_name:
            raise ValueError(f"invalid channel name {name!r}")
        self.spec = ChannelSpec(name, dtype, tuple(int(n) for n in shape), unit)
        self._writer: ChannelOut | None = None

    @classmethod
    def from_spec(cls, spec: ChannelSpec) -> AcquisitionChannel:
        return cls(spec.name, spec.dtype, spec.shape, spec.unit)

    @property
    def name(self) -> str:
        return self.spec.name

    fullname = name

    @property
    def short_name(self) -> str:
        return self.spec.short_name

    @property
    def dtype(self) -> Any:
        return self.spec.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.shape

    @property
    def unit(self) -> str | None:
        return self.spec.unit

    def bind(self, writer: ChannelOut | None) -> None:
        """Attach to (or, with None, detach from) the Redis channel node that receives the
        points."""
        self._writer = writer

    def emit(self, data: Any) -> int:
        """Publish one point or a block of points; returns how many points were written.

        Raises ``ChannelDataError`` (a ValueError) when the data does not fit the dtype or shape,
        and ``RuntimeError`` when the channel is not attached to a running sequence.
        """
        if self._writer is None:
            raise RuntimeError(
                f"channel {self.name!r} is not publishing: emit inside the sequence context "
                "(after the sequence started, before it ended)"
            )
        return len(self._writer.emit(data))

    def __repr__(self) -> str:
        return (f"AcquisitionChannel({self.name!r}, {self.dtype!r}, {self.shape!r}, "
                f"unit={self.unit!r})")
