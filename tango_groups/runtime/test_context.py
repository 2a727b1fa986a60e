"""``GeventDeviceTestContext``: pytango's ``DeviceTestContext`` for gevent devices, monkey-patched.

The server process is forked from the caller (pytest, a benchmark); gevent's monkey patching is
applied in that child only, first thing, as the ``SequenceManager`` entry point does, so the caller
stays unpatched. Use it with ``process=True`` (a gevent device cannot be restarted in-process).
"""

from __future__ import annotations

import warnings
from typing import Any

from tango.test_context import DeviceTestContext

__all__ = ["GeventDeviceTestContext"]


class GeventDeviceTestContext(DeviceTestContext):
    """A ``DeviceTestContext`` whose server process is monkey-patched before the server starts."""

    def target(self, runserver: Any, process: bool = False) -> None:
        from gevent import monkey

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "patching after ssl was imported": no TLS here
            monkey.patch_all(thread=False)
        super().target(runserver, process)
