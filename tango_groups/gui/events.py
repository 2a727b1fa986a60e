"""The device's change events, delivered in the Qt thread.

pytango calls event callbacks in its own threads; ``DeviceEvents.changed`` is a Qt signal, so a
slot connected to it (from an object of the Qt thread) runs in the Qt thread (a queued
connection). Nothing is polled: every value the panel shows arrives with an event the device
pushes (it pushes every change of every attribute, and the first value with the subscription).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable

import tango
from PyQt5.QtCore import QObject, pyqtSignal

__all__ = ["DeviceEvents"]

logger = logging.getLogger(__name__)


class DeviceEvents(QObject):
    """Change events of some attributes of one device.

    ``changed(name, value)`` for each event with a value; ``failed(name, text)`` for an error
    event (the device is gone, the attribute cannot be read), with the error's description."""

    changed = pyqtSignal(str, object)
    failed = pyqtSignal(str, str)

    def __init__(self, proxy: tango.DeviceProxy, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.proxy = proxy
        self._ids: list[int] = []

    def subscribe(self, names: Iterable[str]) -> None:
        """Subscribe to the change events of ``names`` (the first value comes at once)."""
        for name in names:
            self._ids.append(self.proxy.subscribe_event(
                name, tango.EventType.CHANGE_EVENT, functools.partial(self._received, name)))

    def _received(self, name: str, event: tango.EventData) -> None:
        """In a pytango thread: re-emit as a signal (never touch a widget here). ``name`` is
        the name subscribed to (an event's ``attr_name`` is the full name, lower case)."""
        if event.err:
            errors = event.errors or ()
            text = errors[0].desc if errors else "error event"
            self.failed.emit(name, text)
        elif event.attr_value is not None:
            self.changed.emit(name, event.attr_value.value)

    def close(self) -> None:
        """Unsubscribe from everything (idempotent)."""
        ids, self._ids = self._ids, []
        for event_id in ids:
            try:
                self.proxy.unsubscribe_event(event_id)
            except tango.DevFailed as error:  # the device or the network is gone already
                logger.debug("unsubscribe %s: %s", event_id, error)
