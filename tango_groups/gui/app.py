"""The panel's application: ``run(device)`` opens the window and returns when it is closed.

``device_redis_url`` reads the device's ``RedisURL`` property (the scan table's state and
points come from there); a device whose property cannot be read (no database, no rights) gets
a table without those columns.
"""

from __future__ import annotations

import sys

import tango
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
    """Open the panel of ``device`` and run until its window is closed; the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        panel = open_panel(device, redis_url)
    except tango.DevFailed as error:
        print(f"tango-groups gui: cannot open {device}: {error.args[0].desc.strip()}",
              file=sys.stderr)
        return 1
    code = app.exec_()
    panel.close()
    return code
