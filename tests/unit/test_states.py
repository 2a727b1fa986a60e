"""The SequenceManager's state model on its own: what each phase accepts, and its transitions."""

from __future__ import annotations

import pytest
from tango import DevState

from tango_groups.devices.state import tango_state
from tango_groups.service.reasons import Reason
from tango_groups.service.states import Command, Phase, Transition, refusal, transition


def test_each_phase_accepts_exactly_its_commands() -> None:
    accepted = {phase: {command for command in Command if refusal(phase, command) is None}
                for phase in Phase}
    assert accepted == {
        Phase.IDLE: {Command.START},
        Phase.RUNNING: {Command.ADD, Command.EMIT, Command.END},
        Phase.LOST: {Command.END},
    }
    assert refusal(Phase.IDLE, Command.END) is Reason.NOT_RUNNING
    assert refusal(Phase.RUNNING, Command.START) is Reason.ALREADY_RUNNING
    assert refusal(Phase.LOST, Command.ADD) is Reason.SEQUENCE_LOST


def test_every_phase_reaches_idle_through_end() -> None:
    """No phase is a dead end: End (or Abort, Init) always leads back to IDLE."""
    assert transition(Phase.IDLE, Transition.STARTED) is Phase.RUNNING
    assert transition(Phase.RUNNING, Transition.LOST) is Phase.LOST
    for phase in (Phase.RUNNING, Phase.LOST):
        assert refusal(phase, Command.END) is None
        assert transition(phase, Transition.ENDED) is Phase.IDLE


@pytest.mark.parametrize("phase, event", [
    (Phase.IDLE, Transition.ENDED), (Phase.IDLE, Transition.LOST),
    (Phase.RUNNING, Transition.STARTED), (Phase.LOST, Transition.LOST),
    (Phase.LOST, Transition.STARTED)])
def test_impossible_transitions_are_bugs(phase: Phase, event: Transition) -> None:
    with pytest.raises(ValueError, match=event.value):
        transition(phase, event)


def test_tango_state_follows_phase_and_connection() -> None:
    assert [tango_state(phase, True) for phase in Phase] == [
        DevState.ON, DevState.RUNNING, DevState.FAULT]
    assert {tango_state(phase, False) for phase in Phase} == {DevState.FAULT}
