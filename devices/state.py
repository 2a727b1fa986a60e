"""The SequenceManager's Tango state, from its service's phase and Redis connection: FAULT when
Redis does not answer or the running sequence was lost, else RUNNING while a sequence runs, ON."""

from __future__ import annotations

from tango import DevState

from tango_groups.service.states import Phase

__all__ = ["tango_state"]


def tango_state(phase: Phase, connected: bool) -> DevState:
    if not connected or phase is Phase.LOST:
        return DevState.FAULT
    return DevState.RUNNING if phase is Phase.RUNNING else DevState.ON
