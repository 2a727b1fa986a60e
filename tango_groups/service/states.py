"""The state model of the SequenceManager, in one place.

The manager is in one *phase* at a time; the Redis connection is a separate flag (a Redis that
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
The Tango state follows from phase and connection (``tango_state``): FAULT when Redis does not
answer or the sequence was lost, else RUNNING or ON.
"""

from __future__ import annotations

import enum

__all__ = ["Command", "Phase", "refusal", "tango_state", "transition"]


class Phase(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    LOST = "lost"


class Command(enum.Enum):
    START = "Start"
    ADD = "AddScan"
    EMIT = "EmitChannel"
    END = "End"


# the reason a phase refuses a command with; absent: accepted
_REFUSALS: dict[Phase, dict[Command, str]] = {
    Phase.IDLE: {Command.ADD: "NotRunning", Command.EMIT: "NotRunning",
                 Command.END: "NotRunning"},
    Phase.RUNNING: {Command.START: "AlreadyRunning"},
    Phase.LOST: {Command.START: "SequenceLost", Command.ADD: "SequenceLost",
                 Command.EMIT: "SequenceLost"},
}

_TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.IDLE, "started"): Phase.RUNNING,
    (Phase.RUNNING, "ended"): Phase.IDLE,
    (Phase.LOST, "ended"): Phase.IDLE,
    (Phase.RUNNING, "lost"): Phase.LOST,
}


def refusal(phase: Phase, command: Command) -> str | None:
    """The reason ``phase`` refuses ``command`` with, None when it accepts it."""
    return _REFUSALS[phase].get(command)


def transition(phase: Phase, event: str) -> Phase:
    """The phase after ``event`` (``started``, ``ended``, ``lost``); ValueError when ``event``
    cannot happen in ``phase`` (a bug of the caller, never a client's mistake)."""
    try:
        return _TRANSITIONS[phase, event]
    except KeyError:
        raise ValueError(f"no transition {event!r} from {phase.name}") from None


def tango_state(phase: Phase, connected: bool) -> str:
    """The device state name: FAULT, RUNNING or ON."""
    if not connected or phase is Phase.LOST:
        return "FAULT"
    return "RUNNING" if phase is Phase.RUNNING else "ON"
