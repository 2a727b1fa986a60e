"""The SequenceManager in a real device server process (``DeviceTestContext(process=True)``).

A server that no longer answers at the end of a test is asked for the stack of every thread
(SIGUSR1: the device registers ``faulthandler`` for it) before it is stopped: the dump lands in the
test's captured stderr, so a wedge seen once in CI says where it waited.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest
import tango
from tango.test_context import DeviceTestContext

from tango_groups.devices.sequence_manager import SequenceManager
from tango_groups.session import Session

_sessions = itertools.count()
# the channels the tests use, declared so that each has its attribute (Channels property)
CHANNELS = ['{"name": "sum", "unit": "count"}', '{"name": "counts", "dtype": "int32"}',
            '{"name": "spectrum", "shape": [4]}',
            '{"name": "roi", "dtype": "uint16", "shape": [3]}',
            '{"name": "flag", "dtype": "bool"}', '{"name": "img", "shape": [64, 64]}']


class Running(NamedTuple):
    """A started device: its proxy, its full TRL (for other processes) and a library session
    writing to the same Redis session (to run scans the device can add)."""

    proxy: tango.DeviceProxy
    trl: str
    session: Session | None
    context: DeviceTestContext


@pytest.fixture
def start_device(redis_url: str, session_name: str) -> Iterator[Callable[..., Running]]:
    """``start_device(**properties)``: a fresh SequenceManager server process.

    Defaults: the test Redis, a session of its own, EndTimeout 1 s, Redis checked every 0.2 s,
    a lease of 1.5 s (a restarted device waits for the killed one's to expire), the test
    channels declared.
    """
    contexts: list[DeviceTestContext] = []
    sessions: list[Session] = []

    def start(**properties: object) -> Running:
        props = {"RedisURL": redis_url, "Session": f"{session_name}_{next(_sessions)}",
                 "EndTimeout": 1.0, "HealthCheckPeriod": 0.2, "LeaseTime": 1.5,
                 "Channels": CHANNELS,
                 **properties}
        context = DeviceTestContext(SequenceManager, properties=props, process=True,
                                    timeout=30)
        proxy = context.__enter__()
        contexts.append(context)
        proxy.set_timeout_millis(10_000)
        session = None
        if ":" not in str(props["Session"]):  # else the device refuses it (a test of that)
            session = Session(str(props["Session"]), redis_url=str(props["RedisURL"]))
            sessions.append(session)
        return Running(proxy, context.get_device_access(), session, context)

    yield start
    died, wedged = [], []
    for context in reversed(contexts):
        if context.server is not None and not context.thread.is_alive():
            died.append(context.thread.exitcode)  # crashed: a segfault is exit code -11
            context.server = None
        elif context.server is not None and not _answers(context.get_device_access()):
            wedged.append(context.get_device_access())
            os.kill(context.thread.pid, signal.SIGUSR1)  # its threads' stacks, to stderr
        context.__exit__(None, None, None)
    for session in sessions:
        session.close()
    assert not died, f"a device server process died during the test (exit codes {died})"
    assert not wedged, f"device {wedged} did not answer State within 5 s (stacks in stderr)"


def _answers(trl: str) -> bool:
    """Whether the device runs a command (State needs the device monitor) within 5 s."""
    proxy = tango.DeviceProxy(trl)
    proxy.set_timeout_millis(5_000)
    try:
        proxy.command_inout("State")
    except tango.DevFailed as error:
        return all(entry.reason != "API_DeviceTimedOut" for entry in error.args)
    return True


@pytest.fixture
def kill_device() -> Callable[[Running], None]:
    """``kill_device(running)``: SIGKILL its server process, as a crash or ``kill -9`` would."""

    def kill(running: Running) -> None:
        process = running.context.thread
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        running.context.server = None  # nothing left to ask to stop

    return kill


@pytest.fixture
def device(start_device: Callable[..., Running]) -> Running:
    return start_device()
