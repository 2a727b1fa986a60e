"""Sphinx configuration of the tango_groups documentation (``sphinx-build -W docs <out>``).

The device reference tables come from ``_ext/device_reference.py``, which imports the device
class: build with the project installed (``./dev.sh test`` installs the ``docs`` extra).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "tango_groups"
author = "tango_groups developers"
extensions = ["sphinx.ext.autosectionlabel", "device_reference"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
