"""The SequenceManager's state model on its own: what each phase accepts, and its transitions."""

from __future__ import annotations

import pytest

from tango_groups.service.states import Command, Phase, refusal, tango_state, transition


def test_each_phase_accepts_exactly_its_commands() -> None:
    accepted = {phase: {command for command in Command if refusal(phase, command) is None}
                for phase in Phase}
    assert accepted == {
        Phase.IDLE: {Command.START},
        Phase.RUNNING: {Command.ADD, Command.EMIT, Command.END},
        Phase.LOST: {Command.END},
    }
    assert refusal(Phase.IDLE, Command.END) == "NotRunning"
    assert refusal(Phase.RUNNING, Command.START) == "AlreadyRunning"
    assert refusal(Phase.LOST, Command.ADD) == "SequenceLost"


def test_every_phase_reaches_idle_through_end() -> None:
    """No phase is a dead end: End (or Abort, Init) always leads back to IDLE."""
    assert transition(Phase.IDLE, "started") is Phase.RUNNING
    assert transition(Phase.RUNNING, "lost") is Phase.LOST
    for phase in (Phase.RUNNING, Phase.LOST):
        assert refusal(phase, Command.END) is None
        assert transition(phase, "ended") is Phase.IDLE


@pytest.mark.parametrize("phase, event", [(Phase.IDLE, "ended"), (Phase.IDLE, "lost"),
                                          (Phase.RUNNING, "started"), (Phase.LOST, "lost"),
                                          (Phase.LOST, "started")])
def test_impossible_transitions_are_bugs(phase: Phase, event: str) -> None:
    with pytest.raises(ValueError, match=event):
        transition(phase, event)


def test_tango_state_follows_phase_and_connection() -> None:
    assert [tango_state(phase, True) for phase in Phase] == ["ON", "RUNNING", "FAULT"]
    assert {tango_state(phase, False) for phase in Phase} == {"FAULT"}
