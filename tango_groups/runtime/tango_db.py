"""A private Tango database (pytango-db's ``PyDatabaseds``) on a free loopback port.

``tango-groups serve`` and the end-to-end tests use it when no ``TANGO_HOST`` is given::

    with TangoDatabaseServer() as db:
        db.tango_host                  # "127.0.0.1:<port>": the TANGO_HOST of its clients

The server is pytango-db's sqlite Tango database (the ``PyDatabaseds`` console script installed
next to this Python, else the one on ``PATH``) with an in-memory database
(``PYTANGO_DATABASE_NAME=:memory:``, which pytango-db serves from a single worker thread): nothing
is written to disk and nothing outlives the process. It listens on port 0, so the kernel picks a
free port and no other process can take it between choosing and binding; the port is read from the
line ``--print-host-port`` makes it log. Its output goes to a log file in a private temporary
directory, whose tail is part of the error when it does not start.

The process runs in its own process group: a Ctrl-C in the terminal reaches only the program that
started it, which stops its clients (the device server) before the database.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import tango

from .process import ChildProcess, log_tail

__all__ = ["TangoDatabaseServer", "pydatabaseds_executable"]

_LISTENING = re.compile(r"Database DS listening on: host=(\S+), port=(\d+)\.")
_INSTANCE = "2"  # sys/database/2: the instance name every Tango installation uses


def pydatabaseds_executable() -> str:
    """``PyDatabaseds`` of this environment (next to ``sys.executable``), else the one on PATH."""
    beside = Path(sys.executable).with_name("PyDatabaseds")
    if beside.is_file():
        return str(beside)
    found = shutil.which("PyDatabaseds")
    if found:
        return found
    raise RuntimeError(
        "no PyDatabaseds found: install the project (pip install tango_groups pulls pytango-db) "
        "or put pytango-db's PyDatabaseds on PATH"
    )


class TangoDatabaseServer(ChildProcess):
    """Start with ``start()`` (or as a context manager); ``tango_host`` is ``127.0.0.1:<port>``."""

    workdir_prefix = "tango_groups_db_"
    log_name = "databaseds.log"
    what = "the Tango database"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port: int | None = None
        super().__init__()

    @property
    def tango_host(self) -> str:
        if self.port is None:
            raise RuntimeError("the Tango database is not running: call start() first")
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> Self:
        """Start the server and wait until ``tango.Database(host, port)`` answers."""
        workdir = self._new_workdir()
        env = {key: value for key, value in os.environ.items() if key != "TANGO_HOST"}
        env["PYTANGO_DATABASE_NAME"] = ":memory:"
        with open(self.log_path, "wb") as log:
            self._spawn([pydatabaseds_executable(), "--host", self.host, "--port", "0",
                         "--print-host-port", _INSTANCE],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                        cwd=workdir)
        deadline = time.monotonic() + timeout
        try:
            self.port = self._wait_for_port(deadline)
            self._wait_for_answer(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _fail(self, what: str) -> RuntimeError:
        return RuntimeError(
            f"the embedded Tango database (PyDatabaseds) {what}; its log ends with:\n"
            f"{log_tail(self.log_path)}\n"
            "Check that pytango-db is installed in this environment, or give an existing "
            "database with TANGO_HOST."
        )

    def _wait_for_port(self, deadline: float) -> int:
        while True:
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                return int(match.group(2))
            if self._process.poll() is not None:
                raise self._fail(f"exited with code {self._process.returncode} before listening")
            if time.monotonic() > deadline:
                raise self._fail("did not report its port in time")
            time.sleep(0.02)

    def _wait_for_answer(self, deadline: float) -> None:
        while True:
            try:
                tango.Database(self.host, self.port).get_info()
                return
            except tango.DevFailed:
                if self._process.poll() is not None:
                    raise self._fail(f"exited with code {self._process.returncode}") from None
                if time.monotonic() > deadline:
                    raise self._fail(f"does not answer on {self.tango_host}") from None
                time.sleep(0.05)

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        self.port = None
