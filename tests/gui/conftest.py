"""Qt offscreen for the panel's tests, skipped with the reason where Qt cannot load; the device
fixtures of ``tests/device`` (``start_device``: a real SequenceManager server process)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # no display needed, the same pixels everywhere

_DEVICE_CONFTEST = Path(__file__).parents[1] / "device" / "conftest.py"
_spec = importlib.util.spec_from_file_location("device_fixtures", _DEVICE_CONFTEST)
_device_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_device_fixtures)
start_device = _device_fixtures.start_device
CHANNELS = _device_fixtures.CHANNELS

# Qt aborts the process when its platform plugin cannot load: try it in a child first
_PROBE = ("from PyQt5.QtWidgets import QApplication; import pyqtgraph; "
          "app = QApplication([]); print('ok')")


def _qt_problem() -> str | None:
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                               check=False, timeout=60,
                               env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    except subprocess.TimeoutExpired:
        return "starting a QApplication took over 60 s"
    if probe.returncode == 0 and probe.stdout.strip() == "ok":
        return None
    lines = (probe.stderr or probe.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {probe.returncode}"


@pytest.fixture(scope="session")
def qapp():
    """The process's QApplication (offscreen); skips when Qt or the gui extra cannot load."""
    problem = _qt_problem()
    if problem is not None:
        pytest.skip(f"Qt cannot start here (the gui extra: pip install 'tango_groups[gui]'): "
                    f"{problem}")
    from PyQt5.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])
