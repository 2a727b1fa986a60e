"""The ``tango-groups`` command line, a client of the library and of the device.

``commands`` parses the arguments and runs ``serve``, ``register``, ``fixtures`` and ``demo``;
each other subcommand has its module: ``listen`` (both data models), ``loopscan`` (a simulated
scan in either model), ``gui`` (the panel's options; Qt is imported only when it runs).
``options`` holds what several subcommands share (``--redis-url``, ``--data-format`` and their
checks), ``demo`` the seed's sequence played through a device, and ``formatting`` the one-line
description of a Bliss 1.x event that ``listen`` and ``demo`` print (and ``runnable``, a command
of the venv as the user's shell runs it, for serve's hints).
"""

from .commands import build_parser, main

__all__ = ["build_parser", "main"]
