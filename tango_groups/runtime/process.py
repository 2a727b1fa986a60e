"""``ChildProcess``: a server this program started (Redis, Tango DB, device server) and owns.

Each runs in a private temporary directory (logs, data files) and its own process group (a Ctrl-C
in the terminal reaches only its owner, which stops children in order). Stopping sends the
subclass's ``stop_signal``, waits, kills after a timeout, and removes the directory; nothing the
program did not start is ever signalled. Subclasses implement ``start()`` (returning ``self``).

Its output goes to ``log_path`` (``log_name`` in the directory); ``log_tail`` quotes the end of a
log in an error message (the runtime's start-up errors, ``tango-groups serve`` when its device
server dies, the tests' diagnostics).

``stopped_by_signals()`` is how a program that started children ends on SIGINT, SIGTERM or SIGHUP
(the terminal closed): inside the block these signals raise ``Stopped``, so the ``ExitStack`` or
``with`` blocks holding the children stop them, in reverse order. The children run in their own
process groups, so a closed terminal reaches only the owner, which must stop them.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Self

__all__ = ["ChildProcess", "Stopped", "log_tail", "stopped_by_signals"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal closed


class Stopped(BaseException):  # like KeyboardInterrupt: no "except Exception" swallows it
    """SIGINT, SIGTERM or SIGHUP arrived: stop what was started."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_held: list[int | None] = []  # while a child is spawned: the stop signal that came meanwhile


def _raise_stopped(signum: int, frame: object) -> None:
    for name in _STOP_SIGNALS:  # one signal is enough: shutdown is bounded
        signal.signal(name, signal.SIG_IGN)
    if _held:  # raised by ``ChildProcess._spawn`` once the child is recorded
        _held[-1] = signum
        return
    raise Stopped(signum)


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Inside the block, SIGINT, SIGTERM and SIGHUP raise ``Stopped`` (see the module docstring);
    the previous handlers are back after it."""
    handlers = {name: signal.signal(name, _raise_stopped) for name in _STOP_SIGNALS}
    try:
        yield
    finally:
        for name, handler in handlers.items():
            signal.signal(name, handler)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, indented for an error message ("" if none)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


class ChildProcess:
    """Lifecycle shared by the runtime's servers; a context manager (``start`` / ``stop``)."""

    stop_signal = signal.SIGTERM
    stop_timeout = 5.0
    workdir_prefix = "tango_groups_"
    log_name = "process.log"

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def _new_workdir(self) -> Path:
        """A fresh private directory for this run (removed by ``stop``)."""
        self._workdir = tempfile.TemporaryDirectory(prefix=self.workdir_prefix)
        return Path(self._workdir.name)

    @property
    def what(self) -> str:
        """What it is, for error messages ("the Tango database")."""
        return type(self).__name__

    @property
    def log_path(self) -> Path:
        """Where its output goes (in the directory of the current or last run)."""
        if self._workdir is None:
            raise RuntimeError(f"{self.what} was not started")
        return Path(self._workdir.name) / self.log_name

    def _spawn(self, command: list[str], **popen: object) -> subprocess.Popen:
        """Start it; a stop signal that arrives meanwhile raises ``Stopped`` once the child is
        recorded (raised inside ``Popen``, it would leave a child that nobody stops)."""
        _held.append(None)
        try:
            self._process = subprocess.Popen(command, process_group=0, **popen)
        finally:
            signum = _held.pop()
        if signum is not None:
            raise Stopped(signum)
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
