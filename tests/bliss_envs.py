"""Where the test-only consumers run: each in its own environment, outside ``.venv``.

* The Bliss 1.x reference, blissdata 0.3.1, in ``.venv-bliss1``: it and blissdata 2.x
  (``tango_groups[bliss2]``, in ``.venv``) cannot share one environment, so the 1.x scripts
  (``interop/bliss_reader.py``, ``interop/bliss_datanode_demo.py``) run as subprocesses of its
  Python, ``BLISS1_PYTHON`` (``$TANGO_GROUPS_BLISS1_PYTHON``).
* blisswriter 3, Bliss 2's HDF5 writer, in ``.venv-blisswriter``: it pulls blissdata-lima2 and
  lima2-client, which the product never needs; ``tests/bliss2/test_blisswriter.py`` runs its
  command, ``BLISSWRITER`` (``$TANGO_GROUPS_BLISSWRITER``), as a process.

``./dev.sh test`` builds both environments (``tests/*-requirements.txt``) and exports the two
variables; without them, the environments of the checkout are used.
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).parents[1]
BLISS1_PYTHON = os.environ.get("TANGO_GROUPS_BLISS1_PYTHON") or str(
    CHECKOUT / ".venv-bliss1" / "bin" / "python")
BLISSWRITER = os.environ.get("TANGO_GROUPS_BLISSWRITER") or str(
    CHECKOUT / ".venv-blisswriter" / "bin" / "blisswriter")
