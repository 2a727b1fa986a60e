"""The device's change events, delivered in the Qt thread, newest value last.

pytango calls event callbacks in its own threads; they post to ``DeviceEvents``, a ``QObject``
of the Qt thread, so ``changed`` is emitted in the Qt thread. Nothing is polled: every value the
panel shows arrives with an event the device pushes (every change of every attribute, and the
first value with the subscription).

One read, once: Tango does not promise that the events pushed just after ``subscribe_event``
returns reach the new subscriber (its ZMQ subscription may not have reached the server yet), so
``RESYNC_MS`` after subscribing, every attribute is read once (``synced`` is then emitted). A
value, from an event or that read, is shown only if its timestamp (the device's) is not older
than the one shown: a late read never hides a newer event, nor a late event a newer read.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

import tango
from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from tango_groups.devices.interface import event_value

__all__ = ["RESYNC_MS", "DeviceEvents"]

logger = logging.getLogger(__name__)

RESYNC_MS = 500  # after subscribing: far above the time ZMQ takes to subscribe on one host


class DeviceEvents(QObject):
    """Change events of some attributes of one device.

    ``changed(name, value)`` for each new value; ``failed(name, text)`` for an error event (the
    device is gone, the attribute cannot be read), with the error's description; ``synced``
    once the read after the subscriptions is applied (``is_synced``)."""

    changed = pyqtSignal(str, object)
    failed = pyqtSignal(str, str)
    synced = pyqtSignal()
    _arrived = pyqtSignal(str, object, float)  # from pytango's threads: queued to the Qt thread

    def __init__(self, proxy: tango.DeviceProxy, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.proxy = proxy
        self.is_synced = False
        self._ids: list[int] = []
        self._names: list[str] = []
        self._times: dict[str, float] = {}
        self._arrived.connect(self._apply)

    def subscribe(self, names: Iterable[str]) -> None:
        """Subscribe to the change events of ``names`` (the first value comes at once), then
        read them once ``RESYNC_MS`` later (see the module docstring)."""
        for name in names:
            self._names.append(name)
            self._ids.append(self.proxy.subscribe_event(
                name, tango.EventType.CHANGE_EVENT, functools.partial(self._received, name)))
        QTimer.singleShot(RESYNC_MS, self._resync)

    def _received(self, name: str, event: tango.EventData) -> None:
        """In a pytango thread: post the value (never touch a widget here). ``name`` is the
        name subscribed to (an event's ``attr_name`` is the full name, lower case)."""
        if event.err:
            errors = event.errors or ()
            self.failed.emit(name, errors[0].desc if errors else "error event")
        elif event.attr_value is not None:
            self._arrived.emit(name, event_value(event.attr_value),
                               event.attr_value.time.totime())

    def _resync(self) -> None:
        try:
            values = self.proxy.read_attributes(self._names)
        except tango.DevFailed as error:
            self.failed.emit("read", error.args[0].desc)
        else:
            for name, value in zip(self._names, values):
                if not value.has_failed:
                    self._apply(name, value.value, value.time.totime())
        self.is_synced = True
        self.synced.emit()

    def _apply(self, name: str, value: Any, time: float) -> None:
        if time >= self._times.get(name, 0.0):
            self._times[name] = time
            self.changed.emit(name, value)

    @property
    def subscriptions(self) -> int:
        """How many subscriptions are open (``close`` drops them)."""
        return len(self._ids)

    def close(self) -> None:
        """Unsubscribe from everything (idempotent)."""
        ids, self._ids = self._ids, []
        for event_id in ids:
            try:
                self.proxy.unsubscribe_event(event_id)
            except tango.DevFailed as error:  # the device or the network is gone already
                logger.debug("unsubscribe %s: %s", event_id, error)
