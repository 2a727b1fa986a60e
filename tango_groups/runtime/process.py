"""``ChildProcess``: a server this program started (Redis, Tango DB, device server) and owns.

Each runs in a private temporary directory (logs, data files) and its own process group (a Ctrl-C
in the terminal reaches only its owner, which stops children in order). Stopping sends the
subclass's ``stop_signal``, waits, kills after a timeout, and removes the directory; nothing the
program did not start is ever signalled. Subclasses implement ``start()`` (returning ``self``).
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Self

__all__ = ["ChildProcess"]


class ChildProcess:
    """Lifecycle shared by the runtime's servers; a context manager (``start`` / ``stop``)."""

    stop_signal = signal.SIGTERM
    stop_timeout = 5.0
    workdir_prefix = "tango_groups_"

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def _new_workdir(self) -> Path:
        """A fresh private directory for this run (removed by ``stop``)."""
        self._workdir = tempfile.TemporaryDirectory(prefix=self.workdir_prefix)
        return Path(self._workdir.name)

    def _spawn(self, command: list[str], **popen: object) -> subprocess.Popen:
        self._process = subprocess.Popen(command, process_group=0, **popen)
        return self._process

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def poll(self) -> int | None:
        """The exit code, None while it runs (or before it started)."""
        return None if self._process is None else self._process.poll()

    def stop(self, timeout: float | None = None) -> None:
        """Signal, wait up to ``timeout`` (default ``stop_timeout``), kill, remove the directory."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(self.stop_signal)
                try:
                    self._process.wait(self.stop_timeout if timeout is None else timeout)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
