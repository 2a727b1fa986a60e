"""The Bliss 2 data model of the fault suite (``models.DataModel``): the device in ``DataFormat
bliss2``, its sequence read back and judged with blissdata 2.x itself (``bliss2_data``). Imports
blissdata 2.x: use after ``pytest.importorskip("blissdata.redis_engine.store")``.
"""

from __future__ import annotations

import threading

import bliss2_data
import pytest
from blissdata.exceptions import EndOfStream, ScanNotFoundError
from blissdata.redis_engine.scan import ScanState as Bliss2State
from blissdata.streams import CursorGroup
from fault_points import CHANNEL
from models import DataModel, Waiter
from sequence_server import SequenceServer

from tango_groups.bliss2 import data_store
from tango_groups.scanning.scan import ScanState

__all__ = ["BLISS2", "END_REASONS"]

END_REASONS = {ScanState.DONE: "SUCCESS", ScanState.USER_ABORTED: "USER_ABORT",
               ScanState.KILLED: "FAILURE"}


class Bliss2(DataModel):
    """Bliss 2 scans (JSON scans + streams) in a Redis with RedisJSON and RediSearch."""

    name = data_format = "bliss2"
    name_attributes = ("SequenceName", "ScanKey")

    def renew(self, server: SequenceServer) -> None:
        """Bliss sets up its empty Redis again: a new DataStore on it."""
        server.data_client.close()
        server.store = data_store(server.redis.url)

    def assert_named(self, name: str, title: str) -> None:
        assert name.startswith("esrf:scan:"), name

    def references(self, server: SequenceServer, name: str) -> tuple[list[str], list[int]]:
        return bliss2_data.references(server.store, name)

    def points(self, server: SequenceServer, name: str) -> list[float]:
        return bliss2_data.channel_points(server.store, name, CHANNEL).tolist()

    def scan_number(self, server: SequenceServer, name: str) -> int:
        return int(server.store.load_scan(name).number)

    def problems(self, server: SequenceServer, running: str | None = None) -> list[str]:
        return bliss2_data.problems(server.store, server.session_name, running=running)

    def assert_open(self, server: SequenceServer, name: str) -> None:
        assert server.store.load_scan(name).state is Bliss2State.STARTED

    def ended(self, server: SequenceServer, name: str) -> bool:
        return server.store.get_scans_state([name])[name] is Bliss2State.CLOSED

    def assert_ended(self, server: SequenceServer, name: str, final: ScanState) -> None:
        """CLOSED with the end reason of ``final``, every stream sealed, a reader's cursors
        end."""
        scan = server.store.load_scan(name)
        assert scan.state is Bliss2State.CLOSED
        assert scan.info["end_reason"] == END_REASONS[final]
        assert all(stream.is_sealed() for stream in scan.streams.values())
        assert bliss2_data.cursors_end(scan)

    def assert_gone(self, server: SequenceServer, name: str) -> None:
        with pytest.raises(ScanNotFoundError):
            server.store.load_scan(name)

    def waiter(self, server: SequenceServer, name: str) -> Waiter:
        return EndWaiter(server, name)


class EndWaiter:
    """A blissdata reader in a thread, reading every stream of the sequence until its end and
    waiting for CLOSED (as a Bliss 2 consumer following the sequence does)."""

    def __init__(self, server: SequenceServer, key: str) -> None:
        self.store = data_store(server.redis.url)
        self.scan = self.store.load_scan(key)
        self.ended = threading.Event()
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        try:
            cursors = CursorGroup(self.scan.streams)
            while not self.stopped.is_set():
                try:
                    cursors.read(timeout=0.2)
                except EndOfStream:
                    break
            while not self.stopped.is_set() and self.scan.state < Bliss2State.CLOSED:
                self.scan.update(timeout=0.2)
            self.ended.set()
        except BaseException as error:  # noqa: BLE001 (reported by released())
            self.error = error

    def released(self, timeout: float) -> bool:
        return self.ended.wait(timeout)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.store._redis.close()


BLISS2 = Bliss2()
