"""Each sequence service driven on its own, without Tango: a real Redis, no device server.

The way ska-tango-base tests its component managers before its devices: every data model's
``SequenceService`` (``tango_groups.service``) is built as the device's configuration builds it,
driven through the interface alone, and judged by the notifications it sends (what the device
would show) and by its answers and refusals. ``Model`` adapts each data model: the service, and a
library ``Session`` of the same model that runs the scans the sequences reference.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tango_groups.scanning.simulation  # noqa: F401  (registers the simulated counters)
from tango_groups.bliss1.streams import BLOCK_MS
from tango_groups.data.connection import connect
from tango_groups.scanning.scan import Scan, ScanState
from tango_groups.scanning.simulation import loopscan
from tango_groups.service.bliss1 import Bliss1Service
from tango_groups.service.both import BothService
from tango_groups.service.notifications import (
    Notification,
    PendingChanged,
    PointsWritten,
    ScansAdded,
    SequenceEnded,
    SequenceStarted,
    StateChanged,
)
from tango_groups.service.protocol import SequenceService
from tango_groups.service.reasons import ManagerError, Reason
from tango_groups.service.requests import parse_start_request
from tango_groups.service.states import Phase
from tango_groups.session import Session

_owners = itertools.count(1)
TIMEOUT = 1.0  # s: of every Redis request, as RedisTimeout


@dataclasses.dataclass
class Model:
    """A service under test, its notifications, and the library session of its data model."""

    service: SequenceService
    notes: list[Notification]
    library: Session

    def scan(self) -> Scan:
        return loopscan(2, 0.01, self.library.config.get("diode"), session=self.library)

    def of(self, kind: type) -> list[Any]:
        return [note for note in self.notes if isinstance(note, kind)]

    def wait_for(self, condition: Callable[[], bool], seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"not within {seconds} s: {self.notes}"
            time.sleep(0.01)


def _bliss1(session: Session, url: str, on_change: Callable[[Notification], None]
            ) -> Bliss1Service:
    watch_client = connect(url, socket_timeout=BLOCK_MS / 1000 + TIMEOUT)
    return Bliss1Service(session, url, owner=f"test/services/{next(_owners)}",
                         watch_client=watch_client, end_timeout=1.0, on_change=on_change)


def _bliss2(session: Session, url: str, on_change: Callable[[Notification], None]) -> Any:
    from tango_groups.bliss2 import data_store
    from tango_groups.service.bliss2 import Bliss2Service

    return Bliss2Service(session, url, owner=f"test/services/{next(_owners)}",
                         store=data_store(url, TIMEOUT), watch_store=data_store(url, 0.5 + TIMEOUT),
                         block=0.5, end_timeout=1.0, on_change=on_change)


@pytest.fixture(params=["bliss1", "bliss2"])
def model(request, session_name) -> Iterator[Model]:
    url = (request.getfixturevalue("modules_redis").url if request.param == "bliss2"
           else request.getfixturevalue("redis_url"))
    build = _bliss1 if request.param == "bliss1" else _bliss2
    notes: list[Notification] = []
    session = Session(session_name, redis_url=url)
    service = build(session, url, notes.append)
    library = Session(session_name, redis_url=url, data_format=request.param)
    service.open(0.2)
    yield Model(service, notes, library)
    service.close()
    service.release()
    library.close()


def _start(service: SequenceService, **request: Any) -> str:
    return service.start(parse_start_request(json.dumps({"channels": ["sum"], **request})))


def test_a_sequence_from_start_to_end_is_notified_in_order(model: Model) -> None:
    name = _start(model.service, title="unit")
    started = model.of(SequenceStarted)[-1]
    assert (started.name, started.title, started.state) == (name, "unit", ScanState.STARTING)
    assert model.service.phase is Phase.RUNNING
    scan = model.scan()
    assert model.service.add_scan(str(scan.scan_number)) == scan.db_name
    assert model.service.emit("sum", [1.0, 2.0]) == 2
    assert model.service.end() == "DONE"
    kinds = [type(note) for note in model.notes if not isinstance(note, StateChanged)]
    assert kinds[kinds.index(SequenceStarted):] == [
        SequenceStarted, ScansAdded, PointsWritten, PendingChanged, SequenceEnded]
    assert model.of(ScansAdded)[-1] == ScansAdded((scan.scan_number,), (scan.db_name,))
    assert model.of(PointsWritten)[-1].block.tolist() == [1.0, 2.0]
    assert model.of(SequenceEnded)[-1].state is ScanState.DONE
    assert model.of(StateChanged)[-1].phase is Phase.IDLE and model.service.phase is Phase.IDLE


def test_each_refusal_has_its_reason(model: Model) -> None:
    def refused(call: Callable[[], Any]) -> Reason:
        with pytest.raises(ManagerError) as error:
            call()
        return error.value.reason

    assert refused(lambda: model.service.add_scan("1")) is Reason.NOT_RUNNING
    assert refused(model.service.end) is Reason.NOT_RUNNING
    _start(model.service)
    assert refused(lambda: _start(model.service)) is Reason.ALREADY_RUNNING
    assert refused(lambda: model.service.emit("nope", [1.0])) is Reason.UNKNOWN_CHANNEL
    assert refused(lambda: model.service.emit("sum", ["text"])) is Reason.BAD_DATA
    number = model.of(SequenceStarted)[-1].number
    assert refused(lambda: model.service.add_scan(str(number))) is Reason.NOT_A_SCAN
    scan = model.scan()
    model.service.add_scan(str(scan.scan_number))
    assert refused(lambda: model.service.add_scan(scan.db_name)) is Reason.DUPLICATE_SCAN
    assert model.service.abort() == "USER_ABORTED"


def test_a_number_not_written_yet_is_pending_until_its_scan_starts(model: Model) -> None:
    _start(model.service)
    upcoming = model.of(SequenceStarted)[-1].number + 1
    assert model.service.add_scan(str(upcoming)) == f"pending:{upcoming}"
    assert model.of(PendingChanged)[-1] == PendingChanged((upcoming,))
    assert f"Waiting for scans [{upcoming}]" in model.of(StateChanged)[-1].status
    scan = model.scan()
    assert scan.scan_number == upcoming
    model.wait_for(lambda: ScansAdded((upcoming,), (scan.db_name,)) in model.notes)
    assert model.of(PendingChanged)[-1] == PendingChanged(())
    assert model.service.end() == "DONE"


def test_a_group_is_checked_whole_before_it_is_written(model: Model) -> None:
    first, second = model.scan(), model.scan()
    group = {"scans": [first.scan_number, second.scan_number], "title": "pair"}
    assert model.service.create_group(json.dumps(group))
    with pytest.raises(ManagerError) as error:
        model.service.create_group(json.dumps({"scans": [first.scan_number,
                                                         first.scan_number]}))
    assert error.value.reason is Reason.DUPLICATE_SCAN
    with pytest.raises(ManagerError) as error:
        model.service.create_group(json.dumps({"scans": [first.scan_number, 10**9]}))
    assert error.value.reason is Reason.UNKNOWN_SCAN


def test_both_is_composed_of_the_two_through_the_interface(modules_redis, session_name) -> None:
    """One sequence in each model: the 1.x name is the answer, the Bliss 2 key rides along in
    the one SequenceStarted; both sides end. A path is the Bliss 2 sequence's file."""
    url, notes = modules_redis.url, []
    session = Session(session_name, redis_url=url)
    service = BothService(lambda on_change: _bliss1(session, url, on_change),
                          lambda on_change: _bliss2(session, url, on_change), notes.append)
    service.open(0.2)
    try:
        name = _start(service, title="both", path="/data/both.h5")
        started = [note for note in notes if isinstance(note, SequenceStarted)][-1]
        assert started.name == name and started.key.startswith("esrf:scan:")
        assert list(service.second.store.load_scan(started.key).info["h5maps"]) == [
            "/data/both.h5"]
        assert service.emit("sum", [3.0]) == 1
        assert service.end() == "DONE"
        assert [note.state for note in notes if isinstance(note, SequenceEnded)] == [
            ScanState.DONE]
        assert service.phase is Phase.IDLE and service.second.phase is Phase.IDLE
    finally:
        service.close()
        service.release()


def test_a_pending_number_far_beyond_the_counter_is_named_in_the_status(model: Model) -> None:
    _start(model.service)
    upcoming = model.of(SequenceStarted)[-1].number + 1
    assert model.service.add_scan(str(upcoming)) == f"pending:{upcoming}"
    assert "far beyond" not in model.service.status()
    far = upcoming + 1000  # a typo, most likely: accepted, and named
    assert model.service.add_scan(str(far)) == f"pending:{far}"
    status = model.service.status()
    assert f"Scan {far} is far beyond the last scan number of" in status
    assert f"Scan {upcoming} " not in status
    assert model.service.abort() == "USER_ABORTED"
    assert "far beyond" not in model.service.status()


def test_every_service_has_the_whole_interface() -> None:
    from tango_groups.service.bliss2 import Bliss2Service

    methods = {name for name, member in vars(SequenceService).items()
               if callable(member) and not name.startswith("_")}
    assert {"start", "plan_add", "plan_group", "give_up"} <= methods
    for service in (Bliss1Service, Bliss2Service, BothService):
        assert not {name for name in methods if not callable(getattr(service, name, None))}, (
            service)


def test_a_path_is_where_bliss2_saves_and_bliss1_refuses_it(model: Model) -> None:
    if isinstance(model.service, Bliss1Service):  # no HDF5 file: refused, nothing written
        with pytest.raises(ManagerError) as error:
            _start(model.service, path="/data/seq.h5")
        assert error.value.reason is Reason.BAD_REQUEST and "Bliss 2" in error.value.message
        assert model.service.phase is Phase.IDLE and not model.of(SequenceStarted)
        return
    _start(model.service, path="/data/seq.h5")
    started = model.of(SequenceStarted)[-1]
    assert list(started.scan_info["h5maps"]) == ["/data/seq.h5"]
    model.service.end()
    _start(model.service, path="")  # no file: blisswriter skips it
    assert "h5maps" not in model.of(SequenceStarted)[-1].scan_info
    model.service.end()
