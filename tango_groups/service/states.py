"""The state model of the SequenceManager, in one place.

A service is in one *phase* at a time; the Redis connection is a separate flag (a Redis that
does not answer stops no phase: the phase resumes when it answers again)::

    phase     what it means                          Start  AddScan/Emit  End/Abort
    IDLE      no sequence open                       yes    NotRunning    NotRunning
    RUNNING   a sequence open in Redis               AlreadyRunning  yes  yes
    LOST      Redis lost the open sequence's data    SequenceLost  SequenceLost  yes (clears)
              (Bliss 2: or a write of it failed)

    transition                 from              to
    started                    IDLE              RUNNING
    ended                      RUNNING, LOST     IDLE      (End, Abort, Init, shutdown)
    lost                       RUNNING           LOST      (the sequence's node vanished; Bliss 2:
                                                           a write failed, its writers are gone)

A failure while a command writes never changes the phase: the command can be given again (End
after Redis came back ends the sequence; a write that timed out is checked before the next one).
The Tango device shows phase and connection as its state (``tango_groups.devices``).
"""

from __future__ import annotations

import enum

from .reasons import Reason

__all__ = ["Command", "Phase", "Transition", "refusal", "transition"]


class Phase(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    LOST = "lost"


class Command(enum.Enum):
    """The requests a phase may refuse (group requests are independent of the phase)."""

    START = "start"
    ADD = "add a scan"
    EMIT = "emit points"
    END = "end or abort"


class Transition(enum.Enum):
    STARTED = "started"
    ENDED = "ended"
    LOST = "lost"


# the reason a phase refuses a command with; absent: accepted
_REFUSALS: dict[Phase, dict[Command, Reason]] = {
    Phase.IDLE: {Command.ADD: Reason.NOT_RUNNING, Command.EMIT: Reason.NOT_RUNNING,
                 Command.END: Reason.NOT_RUNNING},
    Phase.RUNNING: {Command.START: Reason.ALREADY_RUNNING},
    Phase.LOST: {Command.START: Reason.SEQUENCE_LOST, Command.ADD: Reason.SEQUENCE_LOST,
                 Command.EMIT: Reason.SEQUENCE_LOST},
}

_TRANSITIONS: dict[tuple[Phase, Transition], Phase] = {
    (Phase.IDLE, Transition.STARTED): Phase.RUNNING,
    (Phase.RUNNING, Transition.ENDED): Phase.IDLE,
    (Phase.LOST, Transition.ENDED): Phase.IDLE,
    (Phase.RUNNING, Transition.LOST): Phase.LOST,
}


def refusal(phase: Phase, command: Command) -> Reason | None:
    """The reason ``phase`` refuses ``command`` with, None when it accepts it."""
    return _REFUSALS[phase].get(command)


def transition(phase: Phase, event: Transition) -> Phase:
    """The phase after ``event``; ValueError when ``event`` cannot happen in ``phase`` (a bug of
    the caller, never a client's mistake)."""
    try:
        return _TRANSITIONS[phase, event]
    except KeyError:
        raise ValueError(f"no transition {event.value!r} from {phase.name}") from None

