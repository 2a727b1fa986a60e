"""The ``SequenceManager`` device server as a child process, started the Tango way.

``SequenceManager <instance>`` is what a Tango control system runs (by hand, or from Starter/Astor):
the server asks the database at ``TANGO_HOST`` which devices server ``SequenceManager/<instance>``
has, creates them and exports them. So the devices must be registered first (see
``tango_groups.runtime.fixtures``); then::

    with DeviceServer("1", tango_host) as server:
        server.devices          # ["tango_groups/sequence_manager/1"], read from the database

The command is the ``SequenceManager`` console script installed next to this Python, else
``python -m tango_groups.devices`` with this Python. ``start()`` returns once every device of the
instance answers ``State`` (a server that exits or does not answer in time raises with the tail
of its log); ``stop()`` sends SIGINT, which lets the server unexport its devices, then SIGKILL
after a timeout. The server runs in its own process group, so a Ctrl-C in the terminal reaches only
the program that started it, which decides the order things stop in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import tango

from .fixtures import SEQUENCE_MANAGER
from .process import ChildProcess, log_tail

__all__ = ["DeviceServer", "server_command"]

_ADMIN_CLASS = "DServer"  # every server's admin device, dserver/<server>/<instance>


def server_command() -> list[str]:
    """How to run the SequenceManager server with this Python (the instance name comes next)."""
    script = Path(sys.executable).with_name(SEQUENCE_MANAGER)
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "tango_groups.devices"]


class DeviceServer(ChildProcess):
    """Server ``<server>/<instance>`` run by ``command + [instance]`` against ``tango_host``."""

    stop_signal = signal.SIGINT  # lets the server unexport its devices
    stop_timeout = 10.0
    workdir_prefix = "tango_groups_server_"
    log_name = "server.log"

    def __init__(self, instance: str, tango_host: str, command: Sequence[str] | None = None,
                 server: str = SEQUENCE_MANAGER) -> None:
        self.instance = instance
        self.tango_host = tango_host
        self.server = server
        self.command = [*(command or server_command()), instance]
        self.devices: list[str] = []
        super().__init__()

    @property
    def name(self) -> str:
        return f"{self.server}/{self.instance}"

    @property
    def what(self) -> str:
        return f"the device server {self.name}"

    def proxy(self, device: str) -> tango.DeviceProxy:
        """A proxy naming the database explicitly (works whatever this process's TANGO_HOST)."""
        return tango.DeviceProxy(f"tango://{self.tango_host}/{device}")

    def already_running(self) -> bool:
        """Whether a server ``<server>/<instance>`` already answers at ``tango_host`` (started by
        someone else: its admin device ``dserver/<server>/<instance>`` is exported and alive)."""
        try:
            self.proxy(f"dserver/{self.name}").ping()
        except tango.DevFailed:
            return False
        return True

    def start(self, timeout: float = 30.0) -> Self:
        """Start the server and wait until every one of its devices answers ``State``."""
        self.devices = self._registered_devices()
        workdir = self._new_workdir()
        env = dict(os.environ, TANGO_HOST=self.tango_host, PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as log:
            try:
                self._spawn(self.command, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=workdir)
            except OSError as error:
                self.stop()
                raise RuntimeError(f"could not run {self.command}: {error}") from None
        try:
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _registered_devices(self) -> list[str]:
        host, port = self.tango_host.rsplit(":", 1)
        try:
            listed = tango.Database(host, int(port)).get_device_class_list(self.name).value_string
        except tango.DevFailed as error:
            raise RuntimeError(f"the Tango database at {self.tango_host} does not answer "
                               f"({error.args[0].desc.strip()}): start it, or fix TANGO_HOST"
                               ) from None
        devices = [device for device, cls in zip(listed[::2], listed[1::2]) if cls != _ADMIN_CLASS]
        if not devices:
            raise RuntimeError(f"the Tango database at {self.tango_host} has no devices for server "
                               f"{self.name}: register them first (tango_db_fixtures, json2tango)")
        return devices

    def _fail(self, what: str) -> RuntimeError:
        return RuntimeError(
            f"the device server {self.name} ({' '.join(self.command)}) {what}; its log ends "
            f"with:\n{log_tail(self.log_path)}"
        )

    def _wait_ready(self, deadline: float) -> None:
        waiting = list(self.devices)
        while waiting:
            if self._process.poll() is not None:
                raise self._fail(f"exited with code {self._process.returncode}")
            try:
                self.proxy(waiting[0]).command_inout("State")
                waiting.pop(0)
                continue
            except (tango.DevFailed, AttributeError):
                pass  # not exported yet: a proxy may fail either way (see the Tango notes)
            if time.monotonic() > deadline:
                raise self._fail(f"did not export {waiting[0]} in time")
            time.sleep(0.05)
