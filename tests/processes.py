"""Helpers for tests that run the command line as a user would: in subprocesses (tests/e2e,
tests/bliss2)."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def cli_command() -> list[str]:
    """``tango-groups`` as installed next to this Python (else the module, same code)."""
    script = Path(sys.executable).with_name("tango-groups")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tango_groups.cli"]


def clean_env() -> dict[str, str]:
    """This environment without the variables that make the CLI use existing servers."""
    return {key: value for key, value in os.environ.items()
            if key not in ("TANGO_HOST", "TANGO_GROUPS_REDIS_URL", "REDIS_URL")}


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def child_pids(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def command_line(pid: int) -> str:
    """The command line of process ``pid``, words separated by spaces ("" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def is_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class LineReader:
    """A subprocess's stdout (or ``stream``) lines, read by a thread so that waiting for one can
    time out."""

    def __init__(self, process: subprocess.Popen, stream: str = "stdout") -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        thread = threading.Thread(target=self._read, args=(getattr(process, stream),),
                                  daemon=True)
        thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, predicate: Callable[[str], bool], timeout: float = 60.0) -> list[str]:
        """Lines read so far, up to and including the first one matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out; output so far: {self.seen}") from None
            if line is None:
                raise AssertionError(f"output ended; output so far: {self.seen}")
            self.seen.append(line)
            if predicate(line):
                return list(self.seen)


@contextlib.contextmanager
def cli_process(*args: str, env: dict[str, str] | None = None
                ) -> Iterator[tuple[subprocess.Popen, LineReader]]:
    """``tango-groups ARGS`` as a user runs it (``clean_env``, plus ``env``), with a reader of its
    output; killed when the block ends if it still runs."""
    process = subprocess.Popen([*cli_command(), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=clean_env() | (env or {}))
    try:
        yield process, LineReader(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def serve_values(lines: list[str]) -> dict[str, str]:
    """The ``TANGO_HOST=``, ``REDIS_URL=`` and ``DEVICE=`` values ``tango-groups serve`` printed."""
    return dict(line.split("=", 1) for line in lines
                if line.split("=", 1)[0] in ("TANGO_HOST", "REDIS_URL", "DEVICE"))
