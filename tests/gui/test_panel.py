"""The sequence panel against a real SequenceManager that another client drives (offscreen Qt).

The test's own ``DeviceProxy`` is the other client: it runs a sequence (scans by number, one
pending before it runs, one by db_name; points on two channels) while the panel only listens;
the panel's widgets must then hold what the device holds. A refusal clicked in the panel shows
its reason in words; the panel's own buttons start and abort a sequence. The screenshot of the
README (docs/sequence_panel.png) is taken here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy
import pytest
import tango

from tango_groups.scanning.simulation import loopscan

# the README's screenshot is rewritten only on request (a test run leaves the checkout as it was):
# TANGO_GROUPS_SCREENSHOT=docs/sequence_panel.png ./dev.sh test tests/gui
SCREENSHOT = os.environ.get("TANGO_GROUPS_SCREENSHOT")


def process_until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Run the Qt event loop until ``predicate()`` holds (events arrive through it)."""
    from PyQt5.QtTest import QTest

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"the panel did not show {what} in {timeout} s"
        QTest.qWait(20)


def scan(device, npoints: int):
    return loopscan(npoints, 0.0, device.session.config.get("diode"), session=device.session)


@pytest.fixture
def panel(qapp, start_device, redis_url):
    from tango_groups.gui.app import open_panel

    device = start_device()
    window = open_panel(device.trl, redis_url)
    # Tango may drop events pushed just after a subscription: the panel reads once after it
    process_until(lambda: window.events.is_synced, "its values read once after subscribing")
    yield device, window
    window.close()


def shown(window, name: str) -> str:
    return window.labels[name].text()


def test_panel_follows_a_sequence_another_client_drives(panel, tmp_path: Path) -> None:
    device, window = panel
    proxy = device.proxy  # the other client
    process_until(lambda: shown(window, "SequenceState") == "IDLE", "the idle device")
    assert shown(window, "State") == "ON"
    assert window.plots.names[:2] == ["sum", "counts"] and "img" in window.plots.names

    db_name = proxy.Start(json.dumps({"title": "gui demo", "channels": ["sum", "counts"]}))
    process_until(lambda: shown(window, "SequenceName") == db_name, "the new sequence")
    first = scan(device, 4)
    assert proxy.AddScan(str(first.scan_number)) == first.db_name
    pending = first.scan_number + 1
    assert proxy.AddScan(str(pending)) == f"pending:{pending}"
    process_until(lambda: shown(window, "PendingScans") == str(pending), "the pending number")
    assert shown(window, "State") == "RUNNING" and shown(window, "SequenceState") == "STARTING"
    proxy.EmitChannel(([3.0, 5.0, 4.0], ["sum"]))
    second = scan(device, 6)  # the pending number: referenced when it starts
    process_until(lambda: shown(window, "PendingScans") == "-", "no pending number")
    third = scan(device, 3)
    proxy.AddScan(third.db_name)
    total = numpy.concatenate([numpy.linspace(6, 9, 7), [8.5, 7.0, 7.5]])
    proxy.EmitChannel((total, ["sum"]))
    proxy.EmitChannel((numpy.arange(12) % 5, ["counts"]))
    assert proxy.End() == "DONE"

    process_until(lambda: shown(window, "SequenceState") == "DONE", "the end of the sequence")
    names = [first.db_name, second.db_name, third.db_name]
    rows = [(str(s.scan_number), s.db_name, "DONE", str(n))
            for s, n in zip((first, second, third), (4, 6, 3))]
    process_until(lambda: window.table.row_texts() == rows, f"the scans {rows}")
    # every widget holds what the device holds
    assert list(proxy.ScanNames) == names
    assert shown(window, "Title") == proxy.Title == "gui demo"
    assert shown(window, "SequenceNumber") == str(proxy.SequenceNumber)
    assert shown(window, "ScanCount") == str(proxy.ScanCount) == "3"
    assert shown(window, "ChannelNames") == ", ".join(proxy.ChannelNames) == "sum, counts"
    assert shown(window, "State") == str(proxy.State()) == "ON"
    assert shown(window, "Status") == proxy.Status()
    numpy.testing.assert_array_equal(window.plots.values["sum"], proxy.sum)
    numpy.testing.assert_array_equal(window.plots.values["counts"], proxy.counts)
    assert len(window.plots.values["sum"]) == 13
    _, y = window.plots.curves["sum"].getData()
    numpy.testing.assert_array_equal(y, proxy.sum)

    # a refusal, clicked in the panel: its reason in words
    with pytest.raises(tango.DevFailed) as direct:
        proxy.AddScan(str(first.scan_number))
    window.scan_edit.setText(str(first.scan_number))
    window.buttons["AddScan"].click()
    reason = direct.value.args[0]
    assert reason.reason.startswith("SequenceManager_")
    assert window.answer.text() == f"AddScan refused: {reason.desc.strip()}"
    assert "Traceback" not in window.answer.text() and "DevFailed" not in window.answer.text()
    target = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "sequence_panel.png"
    assert window.grab().save(str(target), "PNG") and target.stat().st_size > 10_000


def test_panel_buttons_drive_the_device(panel) -> None:
    device, window = panel
    proxy = device.proxy
    process_until(lambda: shown(window, "SequenceState") == "IDLE", "the idle device")
    window.title_edit.setText("from panel")
    window.channels_edit.setText("sum")
    window.buttons["Start"].click()
    assert proxy.Title == "from panel" and list(proxy.ChannelNames) == ["sum"]
    assert window.answer.text() == f"Start: {proxy.SequenceName}"
    process_until(lambda: shown(window, "Title") == "from panel", "the title")
    window.buttons["Start"].click()  # refused: one runs already
    assert window.answer.text().startswith("Start refused: ")
    window.buttons["Abort"].click()
    assert window.answer.text() == "Abort: USER_ABORTED"
    assert proxy.SequenceState == 5 or proxy.get_attribute_config(
        "SequenceState").enum_labels[proxy.SequenceState] == "USER_ABORTED"
    process_until(lambda: shown(window, "SequenceState") == "USER_ABORTED", "the abort")
    window.buttons["End"].click()
    assert window.answer.text().startswith("End refused: ")
