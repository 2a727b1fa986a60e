"""The sequence panel: one window that follows a SequenceManager and drives it.

What it shows comes from the device's change events only (``events``): the device's State and
Status; the current sequence (Title, SequenceNumber, SequenceState by name, SequenceName, its
custom channels and the pending scan numbers); the table of its scans (``scans``); the live plot
of every channel attribute (``plots``). So it follows a sequence that any other client drives.

Its buttons call the device's commands (Start with a title and channels, AddScan with a number or
a db_name, End, Abort) from the Qt thread; the answer, or a refusal's reason in words (the
``desc`` of the ``DevFailed``, ``SequenceManager_*`` reasons), is shown under the buttons.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import tango
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from tango_groups.devices.interface import ATTRIBUTES, Attribute
from tango_groups.gui.events import DeviceEvents
from tango_groups.gui.plots import ChannelPlots
from tango_groups.gui.scans import ScanTable

__all__ = ["SequencePanel", "channel_attributes", "describe_failure", "start_request"]

STATE_COLOURS = {"ON": "#2ca02c", "RUNNING": "#1f77b4", "FAULT": "#d62728"}
SHOWN = ("State", "Status", *ATTRIBUTES)


def channel_attributes(proxy: tango.DeviceProxy) -> tuple[list[str], list[str]]:
    """The device's channel attributes: (scalar channels, channels of array points)."""
    known = {name.lower() for name in SHOWN}
    scalar, arrays = [], []
    for name in proxy.get_attribute_list():
        if name.lower() not in known:
            image = proxy.get_attribute_config(name).data_format == tango.AttrDataFormat.IMAGE
            (arrays if image else scalar).append(name)
    return scalar, arrays


def start_request(title: str, channels: str) -> str:
    """Start's argument from the two fields: channel names separated by commas or spaces (a
    channel the device declares in its Channels property gets its dtype, shape and unit)."""
    names = [name for name in channels.replace(",", " ").split() if name]
    request: dict[str, Any] = {"channels": names}
    if title.strip():
        request["title"] = title.strip()
    return json.dumps(request)


def describe_failure(command: str, error: tango.DevFailed) -> str:
    """A command's failure in words: a refusal's reason, or the failure's description."""
    first = error.args[0]
    kind = "refused" if first.reason.startswith("SequenceManager_") else "failed"
    return f"{command} {kind}: {first.desc.strip()}"


def _value_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    label.setWordWrap(True)
    return label


class SequencePanel(QMainWindow):
    """The window (see the module docstring) for the device behind ``proxy``; ``redis_url``:
    the data Redis the scan table reads state and points from (None: those columns hidden)."""

    def __init__(self, proxy: tango.DeviceProxy, redis_url: str | None = None) -> None:
        super().__init__()
        self.proxy = proxy
        self.setWindowTitle(f"Sequences - {proxy.dev_name()}")
        self.sequence_states = list(
            proxy.get_attribute_config(Attribute.SEQUENCE_STATE).enum_labels)
        scalar, arrays = channel_attributes(proxy)
        self.table = ScanTable(redis_url)
        self.plots = ChannelPlots(scalar, arrays)
        self.labels = {name: _value_label() for name in SHOWN if name != Attribute.SCAN_INFO}
        central = QWidget()
        layout = QVBoxLayout(central)
        top = QHBoxLayout()
        top.addWidget(self._box("Device", ("State", "Status")), 1)
        top.addWidget(self._box("Sequence", (
            Attribute.TITLE, Attribute.SEQUENCE_NUMBER, Attribute.SEQUENCE_STATE,
            Attribute.SEQUENCE_NAME, Attribute.CHANNEL_NAMES, Attribute.SCAN_COUNT,
            Attribute.PENDING_SCANS)), 2)
        layout.addLayout(top)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.table)
        splitter.addWidget(self.plots)
        splitter.setSizes([420, 520])
        layout.addWidget(splitter, 1)
        layout.addWidget(self._commands(", ".join(scalar + arrays)))
        self.setCentralWidget(central)
        self.events = DeviceEvents(proxy, self)
        self.events.changed.connect(self._changed)
        self.events.failed.connect(self._failed)
        self.events.subscribe([*SHOWN, *self.plots.names])

    # -- layout ---------------------------------------------------------------------------------
    def _box(self, title: str, names: tuple[str, ...]) -> QGroupBox:
        box = QGroupBox(title)
        form = QFormLayout(box)
        for name in names:
            label = self.proxy.get_attribute_config(name).label if name not in (
                "State", "Status") else name
            form.addRow(f"{label}:", self.labels[name])
        return box

    def _commands(self, channels: str) -> QGroupBox:
        box = QGroupBox("Commands")
        grid = QGridLayout(box)
        self.title_edit = QLineEdit(placeholderText="title (empty: the device's default)")
        self.channels_edit = QLineEdit(channels, placeholderText="channels: sum, counts...")
        self.scan_edit = QLineEdit(placeholderText="scan number or db_name")
        self.buttons = {name: QPushButton(name) for name in ("Start", "AddScan", "End", "Abort")}
        self.answer = _value_label()
        grid.addWidget(QLabel("Title:"), 0, 0)
        grid.addWidget(self.title_edit, 0, 1)
        grid.addWidget(QLabel("Channels:"), 0, 2)
        grid.addWidget(self.channels_edit, 0, 3)
        grid.addWidget(self.buttons["Start"], 0, 4)
        grid.addWidget(QLabel("Scan:"), 1, 0)
        grid.addWidget(self.scan_edit, 1, 1, 1, 3)
        grid.addWidget(self.buttons["AddScan"], 1, 4)
        ends = QHBoxLayout()
        ends.addWidget(self.answer, 1)
        ends.addWidget(self.buttons["End"])
        ends.addWidget(self.buttons["Abort"])
        grid.addLayout(ends, 2, 0, 1, 5)
        self.buttons["Start"].clicked.connect(lambda: self._call("Start", lambda: (
            self.proxy.Start(start_request(self.title_edit.text(), self.channels_edit.text())))))
        self.buttons["AddScan"].clicked.connect(lambda: self._call(
            "AddScan", lambda: self.proxy.AddScan(self.scan_edit.text().strip())))
        self.buttons["End"].clicked.connect(lambda: self._call("End", self.proxy.End))
        self.buttons["Abort"].clicked.connect(lambda: self._call("Abort", self.proxy.Abort))
        return box

    # -- commands -------------------------------------------------------------------------------
    def _call(self, command: str, call: Callable[[], object]) -> None:
        """Run a command; show its answer, or its failure in words (never a traceback)."""
        try:
            answer = call()
        except tango.DevFailed as error:
            self.answer.setStyleSheet("color: #d62728")
            self.answer.setText(describe_failure(command, error))
        else:
            self.answer.setStyleSheet("")
            self.answer.setText(f"{command}: {answer}")

    # -- events ---------------------------------------------------------------------------------
    def _changed(self, name: str, value: Any) -> None:
        if name in self.plots.names:
            self.plots.set_value(name, value)
        elif name == Attribute.SCAN_NUMBERS:
            self.table.set_numbers(value if value is not None else [])
        elif name == Attribute.SCAN_NAMES:
            self.table.set_names(value if value is not None else [])
        if name in self.labels:
            self.labels[name].setText(self.text(name, value))
            if name == "State":
                colour = STATE_COLOURS.get(str(value), "#7f7f7f")
                self.labels[name].setStyleSheet(f"font-weight: bold; color: {colour}")
        if name in (Attribute.SEQUENCE_STATE, Attribute.SCAN_COUNT, Attribute.PENDING_SCANS):
            self.table.refresh()  # scans may have ended

    def _failed(self, name: str, text: str) -> None:
        self.statusBar().showMessage(f"{name}: {text}")

    def text(self, name: str, value: Any) -> str:
        """How a value is shown: states by name, lists comma-separated."""
        if name == Attribute.SEQUENCE_STATE:
            index = int(value)
            return self.sequence_states[index] if index < len(self.sequence_states) else str(index)
        if name in (Attribute.SCAN_NUMBERS, Attribute.SCAN_NAMES, Attribute.PENDING_SCANS,
                    Attribute.CHANNEL_NAMES):
            return ", ".join(str(item) for item in (value if value is not None else [])) or "-"
        return str(value)

    def closeEvent(self, event: Any) -> None:  # Qt calls it
        self.events.close()
        self.table.close_worker()
        super().closeEvent(event)
