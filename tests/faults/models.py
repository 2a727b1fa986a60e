"""The data models the fault suite (``test_faults.py``) runs in, behind one small adapter: how
to start the server, read the sequence back with the model's own reader, judge Redis with the
model's checker, follow the sequence to its end as a reader does. ``BLISS1`` is here;
``model_bliss2.BLISS2`` (blissdata 2.x) is imported only where blissdata 2.x is installed.

Both models go on after a Redis fault and resume after a SIGKILL alike (``closed_anyway``: a
retried End / Abort may answer ``NotRunning`` after a pause, the end having landed on SIGCONT).
Where they differ on purpose, the adapter says so, and only here:

* ``renew``: after Redis lost its data, Bliss 2's db is set up again (as the beamline's Bliss
  does on its empty Redis); 1.x needs nothing.
* names: a 1.x sequence is a data node ending with ``_<title>``, blanks as ``_``
  (``SequenceName``), a Bliss 2 one an ``esrf:scan:`` key (``SequenceName`` and ``ScanKey``);
  its end is an END event with TTLs on every key (1.x), or the CLOSED state with an end reason,
  every stream sealed (Bliss 2).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import ClassVar, Protocol

import redis_checker
import tango
from fault_points import CHANNEL
from sequence_server import SequenceServer

from tango_groups.bliss1 import keys
from tango_groups.bliss1.node import EventType, get_node
from tango_groups.data.connection import connect
from tango_groups.scanning.scan import ScanState

__all__ = ["BLISS1", "NOT_RUNNING", "DataModel", "Waiter"]

NOT_RUNNING = "SequenceManager_NotRunning"


class Waiter(Protocol):
    """A reader in a thread following a sequence until its end."""

    def released(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class DataModel(abc.ABC):
    """One data model of the device (``DataFormat``): the fault suite's view of it."""

    name: ClassVar[str]
    data_format: ClassVar[str]
    name_attributes: ClassVar[tuple[str, ...]]  # the device attributes naming the sequence

    def start(self, sequence_server: Callable[..., SequenceServer], **properties: object
              ) -> SequenceServer:
        """A started server of this model, with the custom channel ``x``."""
        return sequence_server(data_format=self.data_format, Channels=[CHANNEL], **properties)

    def renew(self, server: SequenceServer) -> None:
        """After Redis lost its data: set up what the model's writers need again."""

    @abc.abstractmethod
    def assert_named(self, name: str, title: str) -> None:
        """What Start returned names a sequence of that title in this model."""

    @abc.abstractmethod
    def references(self, server: SequenceServer, name: str) -> tuple[list[str], list[int]]:
        """(scan names, scan numbers) the sequence references, read from Redis."""

    @abc.abstractmethod
    def points(self, server: SequenceServer, name: str) -> list[float]:
        """The points of channel ``x`` of the sequence, read from Redis."""

    @abc.abstractmethod
    def scan_number(self, server: SequenceServer, name: str) -> int:
        """The number of a scan, read from Redis."""

    @abc.abstractmethod
    def problems(self, server: SequenceServer, running: str | None = None) -> list[str]:
        """The model's checker on the server's session: [] when nothing is wrong."""

    @abc.abstractmethod
    def assert_open(self, server: SequenceServer, name: str) -> None:
        """The sequence has no end in Redis."""

    @abc.abstractmethod
    def ended(self, server: SequenceServer, name: str) -> bool:
        """The sequence has its end in Redis."""

    @abc.abstractmethod
    def assert_ended(self, server: SequenceServer, name: str, final: ScanState) -> None:
        """The sequence ended exactly once, in ``final``, as the model writes an end."""

    @abc.abstractmethod
    def assert_gone(self, server: SequenceServer, name: str) -> None:
        """Nothing of the sequence is in Redis."""

    @abc.abstractmethod
    def waiter(self, server: SequenceServer, name: str) -> Waiter:
        """A reader following the sequence as the model's consumers do, from now on."""

    def closed_anyway(self, fault: str, command: str, final: ScanState,
                      error: tango.DevFailed) -> ScanState:
        """A retried End / Abort answered ``error``: after a pause the end may have landed (the
        device read it back: NotRunning). Returns the state the sequence shows."""
        assert fault == "paused", error.args[0].desc
        assert error.args[0].reason == NOT_RUNNING, error.args[0].desc
        return final


class Bliss1(DataModel):
    """Bliss 1.x data nodes, read back with ``tango_groups.data`` and ``redis_checker``."""

    name = data_format = "bliss1"
    name_attributes = ("SequenceName",)

    def assert_named(self, name: str, title: str) -> None:
        assert name.endswith("_" + title.replace(" ", "_")), name

    def references(self, server: SequenceServer, name: str) -> tuple[list[str], list[int]]:
        return redis_checker.references(server.client, name)

    def points(self, server: SequenceServer, name: str) -> list[float]:
        return redis_checker.channel_points(server.client, name, CHANNEL).tolist()

    def scan_number(self, server: SequenceServer, name: str) -> int:
        return int(get_node(name, connection=server.client).info["scan_nb"])

    def problems(self, server: SequenceServer, running: str | None = None) -> list[str]:
        return redis_checker.problems(server.client, server.session_name, running=running)

    def assert_open(self, server: SequenceServer, name: str) -> None:
        assert not redis_checker.has_end(server.client, name)

    def ended(self, server: SequenceServer, name: str) -> bool:
        return redis_checker.has_end(server.client, name)

    def assert_ended(self, server: SequenceServer, name: str, final: ScanState) -> None:
        """Exactly one END, the final state, and every key a TTL."""
        client = server.client
        assert client.xlen(name + keys.END) == 1
        assert get_node(name, connection=client).info["state"] == final.name
        assert redis_checker.keys_without_ttl(client, name) == []

    def assert_gone(self, server: SequenceServer, name: str) -> None:
        assert list(server.client.scan_iter(match=keys.glob_escape(name) + "*")) == []

    def waiter(self, server: SequenceServer, name: str) -> Waiter:
        return EndWaiter(server.redis.url, name)



class EndWaiter:
    """A reader in a thread, following the sequence's events until its END (as Flint or
    ``tango-groups listen --sequence`` do)."""

    def __init__(self, url: str, db_name: str) -> None:
        self.client = connect(url)
        node = get_node(db_name, connection=self.client)
        self.walk = node.walk_events(wait=True)
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._follow, args=(db_name,), daemon=True)
        self.thread.start()

    def _follow(self, db_name: str) -> None:
        try:
            for event in self.walk:
                if event.type is EventType.END_SCAN and event.node.db_name == db_name:
                    self.ended.set()
                    return
        except BaseException as error:  # noqa: BLE001 (reported by released())
            self.error = error

    def released(self, timeout: float) -> bool:
        self.ended.wait(timeout)
        return self.ended.is_set()

    def close(self) -> None:
        self.walk.stop()
        self.thread.join(5)
        self.client.close()


BLISS1 = Bliss1()
