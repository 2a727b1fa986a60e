"""The panel's application: ``run(device)`` opens the window and returns when it is closed.

Ctrl-C (SIGINT) and SIGTERM close the window like its close button (the subscriptions dropped,
exit code 0): Python runs a signal handler only between two Python instructions, never while Qt
waits in its C++ event loop, so the signal handlers only write to a socket Qt watches
(``signal.set_wakeup_fd``), and the Qt thread closes the window when it reads it.

``device_redis_url`` reads the device's ``RedisURL`` property (the scan table's state and
points come from there); a device whose property cannot be read (no database, no rights) gets
a table without those columns.
"""

from __future__ import annotations

import signal
import socket
import sys

import tango
from PyQt5.QtCore import QSocketNotifier
from PyQt5.QtWidgets import QApplication

from tango_groups.gui.panel import SequencePanel

__all__ = ["device_redis_url", "open_panel", "run"]


def device_redis_url(proxy: tango.DeviceProxy) -> str | None:
    """The device's data Redis, or None when its RedisURL property cannot be read."""
    try:
        values = list(proxy.get_property(["RedisURL"])["RedisURL"])
    except (tango.DevFailed, KeyError):
        return None
    return values[0] if values else None


def open_panel(device: str, redis_url: str | None = None) -> SequencePanel:
    """The panel of ``device`` (a QApplication must exist), shown. ``redis_url`` defaults to
    the device's RedisURL property."""
    proxy = tango.DeviceProxy(device)
    panel = SequencePanel(proxy, redis_url or device_redis_url(proxy))
    panel.resize(1100, 720)
    panel.show()
    return panel


def run(device: str, redis_url: str | None = None) -> int:
    """Open the panel of ``device`` and run until its window is closed, or SIGINT or SIGTERM
    closes it; the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        panel = open_panel(device, redis_url)
    except tango.DevFailed as error:
        print(f"tango-groups gui: cannot open {device}: {error.args[0].desc.strip()}",
              file=sys.stderr)
        return 1
    received, wakeup = socket.socketpair()
    wakeup.setblocking(False)
    previous_fd = signal.set_wakeup_fd(wakeup.fileno())
    handlers = {name: signal.signal(name, lambda *_: None)  # the wakeup fd does the work
                for name in (signal.SIGINT, signal.SIGTERM)}
    notifier = QSocketNotifier(received.fileno(), QSocketNotifier.Read)

    def signalled() -> None:
        number = received.recv(1)[0]
        print(f"tango-groups gui: {signal.Signals(number).name}: closing the panel of {device}",
              file=sys.stderr, flush=True)
        app.quit()

    notifier.activated.connect(signalled)
    print(f"tango-groups gui: following {device} (close the window or Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    try:
        code = app.exec_()
    finally:
        notifier.setEnabled(False)
        for name, handler in handlers.items():
            signal.signal(name, handler)
        signal.set_wakeup_fd(previous_fd)
        received.close()
        wakeup.close()
        dropped = panel.events.subscriptions
        panel.close()
        panel.deleteLater()
    print(f"tango-groups gui: closed, {dropped} subscriptions dropped", file=sys.stderr,
          flush=True)
    return code
