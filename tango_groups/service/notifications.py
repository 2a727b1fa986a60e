"""What a service tells its owner: typed notifications that carry the values that changed.

A service calls ``on_change(notification)`` for every change, in the order the changes
happened, with the lock that serialises them held (the callback must only record or queue, never
call back into the service from another thread). Each notification carries everything its owner
shows for it, so the owner (the Tango device) keeps and pushes what it is given and never asks
the service back:

* ``StateChanged``: the phase, whether Redis answers, and the status text;
* ``SequenceStarted``: a sequence started (or was taken over after a crash): what is shown of it
  from now on (with its Bliss 2 key when written in that model); the scans, pending numbers and
  channel points of the previous one are gone;
* ``SequenceEnded``: its final state and final scan_info;
* ``ScansAdded``: the scans just referenced (numbers and db_names, in order), after those of
  earlier notifications (the owner keeps the list: no notification grows with the sequence);
* ``PendingChanged``: the scan numbers added before they started, still awaited;
* ``PointsWritten``: the block of points just written to a custom channel (converted to the
  channel's dtype, shaped ``(n,) + point shape``); the whole history stays in Redis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy

from ..data.channel import ChannelSpec
from ..scanning.scan import ScanState
from .states import Phase

__all__ = ["Notification", "NotificationCallback", "PendingChanged", "PointsWritten",
           "ScansAdded", "SequenceEnded", "SequenceStarted", "StateChanged"]


@dataclasses.dataclass(frozen=True)
class StateChanged:
    phase: Phase
    connected: bool
    status: str


@dataclasses.dataclass(frozen=True)
class SequenceStarted:
    name: str
    number: int
    title: str
    state: ScanState
    channels: tuple[ChannelSpec, ...]  # the custom channels, as declared
    scan_info: dict[str, Any]
    key: str = ""  # its Bliss 2 scan key (esrf:scan:...), when it is written in that model


@dataclasses.dataclass(frozen=True)
class SequenceEnded:
    state: ScanState
    scan_info: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ScansAdded:
    numbers: tuple[int, ...]
    names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PendingChanged:
    numbers: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class PointsWritten:
    channel: str  # the custom channel's name as declared
    block: numpy.ndarray


Notification = (StateChanged | SequenceStarted | SequenceEnded | ScansAdded | PendingChanged
                | PointsWritten)
NotificationCallback = Callable[[Notification], None]
