"""``tango-groups gui`` as a real process against a real device (offscreen Qt): Ctrl-C (SIGINT)
and SIGTERM close the window as its close button does: exit code 0, its subscriptions dropped (it
says how many), no traceback and no Qt warning; a change event after the signal changes nothing.
"""

from __future__ import annotations

import signal

import pytest
from processes import LineReader, cli_process


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_gui_closes_cleanly_on_a_signal(qapp, start_device, stop_signal):
    device = start_device()
    with cli_process("gui", device.trl, env={"QT_QPA_PLATFORM": "offscreen"}) as (process, _):
        errors = LineReader(process, "stderr")
        errors.until(lambda line: line.startswith("tango-groups gui: following "))
        process.send_signal(stop_signal)
        device.proxy.Start("after the signal")  # change events reach the closing panel
        assert process.wait(30) == 0
        device.proxy.Abort()
        closed = errors.until(lambda line: line.startswith("tango-groups gui: closed"))
    said = "\n".join(closed)
    assert f"tango-groups gui: {stop_signal.name}: closing the panel of {device.trl}" in said
    dropped = int(closed[-1].split(", ")[1].split()[0])
    assert dropped > 10, closed[-1]  # State, Status, the sequence's attributes, the channels
    assert "Traceback" not in said and "QObject" not in said and "Error" not in said, said
