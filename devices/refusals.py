
"""``refusals``: how a SequenceManager command fails, the same way for every command.

A refused request (``ManagerError``) becomes a ``DevFailed`` with the service's stable reason
(``SequenceManager_*``) and message, logged as a warning; anything unforeseen becomes
``SequenceManager_InternalError`` with its traceback in the log: a client never sees a bare Python
error (``PyDs_PythonError``). Commands of a device without a service (invalid properties) fail
with ``SequenceManager_NotConfigured`` and the device's status.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from tango import DevFailed, Except

from tango_groups.service.reasons import ManagerError

__all__ = ["REASON_PREFIX", "refusals"]

REASON_PREFIX = "SequenceManager_"  # of every reason a command fails with (the core's are bare)

logger = logging.getLogger(__name__)


def refusals(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ``ManagerError`` into a DevFailed with its stable reason, anything else into
    ``SequenceManager_InternalError`` (with the traceback in the log)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any) -> Any:
        where = f"SequenceManager.{method.__name__}"
        if self.service is None:
            Except.throw_exception("SequenceManager_NotConfigured", self.dev_status(), where)
        try:
            with self._pushes.command():  # its changes are pushed from this thread
                return method(self, *args)
        except ManagerError as error:
            reason = REASON_PREFIX + error.reason
            self.warn_stream(f"{method.__name__} refused: {reason}: {error.message}")
            Except.throw_exception(reason, error.message, where)
        except DevFailed:
            raise
        except Exception as error:
            logger.exception("%s failed", method.__name__)
            self.error_stream(f"{method.__name__} failed: {type(error).__name__}: {error}")
            Except.throw_exception("SequenceManager_InternalError",
                                   f"{type(error).__name__}: {error} (a bug: please report it "
                                   "with the server log)", where)

    return wrapper
