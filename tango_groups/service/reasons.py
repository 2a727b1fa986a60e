"""Why the service refuses a request: one stable ``Reason`` each, and ``ManagerError``.

A refusal's reason is what a client's code tests (the Tango device raises it as
``SequenceManager_<reason>``, ``tango_groups.devices.refusals``); its message says what to do.
Every refusal is raised before anything is written, unless its message says otherwise
(``ScansNotFinished``: the sequence was ended without the scans named).
"""

from __future__ import annotations

import enum

__all__ = ["ManagerError", "Reason"]


class Reason(enum.StrEnum):
    ALREADY_RUNNING = "AlreadyRunning"  # Start while a sequence runs
    NOT_RUNNING = "NotRunning"  # AddScan, EmitChannel, End, Abort with no sequence
    BAD_REQUEST = "BadRequest"  # a request that cannot be parsed or breaks a limit
    BAD_CHANNEL = "BadChannel"  # a channel declaration that cannot work
    BAD_DATA = "BadData"  # points that do not fit their channel
    UNKNOWN_SCAN = "UnknownScan"  # no such scan (expired, never written)
    NOT_A_SCAN = "NotAScan"  # a node that is no scan, the sequence itself, unreadable info
    DUPLICATE_SCAN = "DuplicateScan"  # referenced (or pending) already
    UNKNOWN_CHANNEL = "UnknownChannel"  # points for a channel the sequence did not declare
    SCANS_NOT_FINISHED = "ScansNotFinished"  # End: scans added by number never started
    REDIS_UNAVAILABLE = "RedisUnavailable"  # Redis failed, refused or timed out
    SEQUENCE_LOST = "SequenceLost"  # Redis lost the running sequence
    LEASE_HELD = "LeaseHeld"  # another server holds the device's lease: standing by
    LEASE_LOST = "LeaseLost"  # another server took the device's lease over


class ManagerError(Exception):
    """A refused request: a stable ``reason`` and a ``message`` that says why and what to do."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
