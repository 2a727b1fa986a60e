"""The service's side of the device lease (``tango_groups.data.lease``): one writer per device.

``LeaseGuard`` is the part of ``ServiceCore`` that holds the lease of a fenced session client:
acquired before anything is recovered or written, renewed by the health check. A server whose lease
another holds stands by (FAULT, commands refused with ``LeaseHeld``, a Status naming the holder and
when its lease runs out) and takes over once that lease expired. A lost lease (another server took
over) is for good: FAULT, commands refused with ``LeaseLost``, followers stopped (``_abandon``), and
the fenced client writes nothing more; Init or a restart makes the server stand by.
``LEASE_EACH_COMMAND``: a service whose writes the client does not carry (blissdata's) checks the
lease before each command and write (``_check_lease``): without a round trip while more than half of
it surely remains since its last renewal (a server that was frozen finds it stale), else it renews
it first.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from ..data.connection import RedisError
from ..data.lease import Lease, LeaseLostError
from ..session import Session
from .messages import Names
from .reasons import ManagerError, Reason

__all__ = ["LeaseGuard"]

logger = logging.getLogger(__name__)


class LeaseGuard:
    """See the module docstring; ``ServiceCore`` provides the hooks at the end of the class."""

    LEASE_EACH_COMMAND = False

    def _guard_with(self, lease: Lease | None) -> None:
        self.lease = lease
        self._lease_refusal: ManagerError | None = None  # LeaseHeld (standing by) or LeaseLost

    def _hold_lease(self) -> None:
        """Acquire the lease (or renew it); ``LeaseHeld`` while another server holds it."""
        lease = self.lease
        if lease is None:
            return
        holder = self._redis(lambda: lease.acquire(self.session.client))
        if holder is None:
            self._lease_refusal = None
            return
        until = datetime.datetime.fromtimestamp(holder.until).isoformat(" ", "milliseconds")
        message = (f"Standing by: another SequenceManager ({holder.name}, lease token "
                   f"{holder.token}) writes this device's sequences, its lease runs until "
                   f"{until} (renewed while it runs). This device takes over once it expired.")
        self._fault(ManagerError(Reason.LEASE_HELD, message))
        raise self._lease_refusal

    def _lease_lost(self, error: LeaseLostError) -> ManagerError:
        """Another server took the lease over: FAULT for good, nothing more is written."""
        if self._lease_refusal is None or self._lease_refusal.reason is not Reason.LEASE_LOST:
            token, _, name = error.holder.partition(":")
            who = f" ({name}, lease token {token})" if error.holder else ""
            now = datetime.datetime.now().isoformat(" ", "seconds")
            message = (f"Another SequenceManager{who} took over this device's sequences (lost "
                       f"the lease, seen at {now}): this server writes nothing more. To stand "
                       f"by, {self.names.reopen}.")
            logger.error(message)
            self._abandon()
            self._fault(ManagerError(Reason.LEASE_LOST, message))
        return self._lease_refusal

    def _fault(self, refusal: ManagerError) -> None:
        changed = self.connected or self.connection_error != refusal.message
        self._lease_refusal, self._checked = refusal, False
        self.connected, self.connection_error = False, refusal.message
        if changed:
            self._notify_state()

    def _check_lease(self) -> None:
        """The lease is still this server's (before writes it does not fence): renewed (one
        round trip) unless more than half of it surely remains (``Lease.fresh``)."""
        if self._lease_refusal is not None:
            raise self._lease_refusal
        lease = self.lease
        if lease is not None and lease.token is not None and not lease.fresh():
            self._redis(lambda: lease.renew(self.session.client))

    def _release_lease(self) -> None:
        """Give the lease up at shutdown (a standby takes over at once), unless it was lost."""
        if self.lease is not None and self._lease_refusal is None:
            try:
                self.lease.release(self.session.client)
            except RedisError as error:
                logger.warning("lease not released (it expires by itself): %s", error)

    # -- hooks of the core ----------------------------------------------------------------------
    session: Session
    names: Names
    connected: bool
    connection_error: str
    _checked: bool

    def _redis(self, action: Callable[[], Any], uncertain: tuple[Any, ...] | None = None) -> Any:
        raise NotImplementedError

    def _notify_state(self) -> None:
        raise NotImplementedError

    def _abandon(self) -> None:
        """Follow nothing more: the lease is lost."""
        raise NotImplementedError
