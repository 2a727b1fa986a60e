"""Where the Bliss 1.x reference runs: blissdata 0.3.1 in its own environment, ``.venv-bliss1``.

blissdata 0.3.1 and blissdata 2.x (``tango_groups[bliss2]``, in ``.venv``) cannot share one
environment, so the 1.x scripts (``interop/bliss_reader.py``, ``interop/bliss_datanode_demo.py``)
run as subprocesses of this Python. ``./dev.sh test`` builds that environment and exports its path
as ``TANGO_GROUPS_BLISS1_PYTHON``; without it, ``.venv-bliss1`` of the checkout is used.
"""

from __future__ import annotations

import os
from pathlib import Path

BLISS1_PYTHON = os.environ.get("TANGO_GROUPS_BLISS1_PYTHON") or str(
    Path(__file__).parents[1] / ".venv-bliss1" / "bin" / "python")
