"""``bliss2.streams``: the entries our synchronous writers put in Redis are the ones blissdata
2.4.5's own stream writers put there, byte for byte, ids included, and so is the seal and the
stream's model in the scan document; a reader cannot tell which wrote a stream.

Each case writes the same points twice in one store, once through blissdata (``create_scan``,
``scan.create_stream``, ``send`` + ``join``, ``stop``, ``close``) and once through
``streams.create_scan`` and ``StreamWriter``, then compares the raw ``XRANGE`` of both streams.
Then what a write that got no answer leaves: ``resync`` finds a batch that landed, and a
sealed stream or one Redis lost the end of.
"""

from __future__ import annotations

from typing import Any

import numpy
import pytest

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

from blissdata.streams.default import Stream
from blissdata.streams.scan_sequence import ScanStream

from tango_groups.bliss2 import store_client
from tango_groups.bliss2.streams import create_scan, open_scan, resync, seal

CASES = {
    "float64 points one by one": (Stream.make_definition("a", "float64"), [1.5, 2.5, 3.5]),
    "float64 batches": (Stream.make_definition("a", "float64"),
                        [numpy.arange(3.0), numpy.arange(1.0), numpy.arange(5.0)]),
    "int32 spectra": (Stream.make_definition("a", "int32", (2,)),
                      [numpy.array([[1, 2], [3, 4]], dtype=numpy.int32),
                       numpy.array([5, 6], dtype=numpy.int32)]),
    "variable-length spectra": (Stream.make_definition("a", "uint16", (-1,)),
                                [numpy.arange(3, dtype=numpy.uint16),
                                 numpy.arange(7, dtype=numpy.uint16)]),
    "sub-scan references (JSON)": (ScanStream.make_definition("GroupingMaster:SUBSCANS"),
                                   [{"key": "esrf:scan:A", "scan_number": 1},
                                    {"key": "esrf:scan:B", "scan_number": 2}]),
}
IDENTITY = {"name": "streams", "number": 1, "data_policy": "no_policy", "session": "streams"}


def raw(store: Any, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return store_client(store).xrange(key)


def by_blissdata(store: Any, definition: Any, points: list[Any]) -> Any:
    scan = store.create_scan(IDENTITY, {})
    stream = scan.create_stream(definition)
    scan.prepare()
    scan.start()
    for point in points:
        stream.send(point)
    stream.join()
    scan.stop()
    scan.close()
    return store.load_scan(scan.key)


def by_us(store: Any, definition: Any, points: list[Any]) -> Any:
    scan, writers = create_scan(store, IDENTITY, {}, [definition])
    scan.prepare()
    scan.start()
    for point in points:
        writers[definition.name].send(point)
    seal(writers.values())
    scan.stop()
    scan.close()
    return store.load_scan(scan.key)


@pytest.mark.parametrize("case", CASES)
def test_the_entries_are_blissdatas_byte_for_byte(store, case: str) -> None:
    definition, points = CASES[case]
    theirs, ours = by_blissdata(store, definition, points), by_us(store, definition, points)
    name = definition.name
    theirs_raw, ours_raw = raw(store, theirs.streams[name].key), raw(store, ours.streams[name].key)
    assert len(ours_raw) == len(points) + 1  # one entry per send, then the seal
    assert ours_raw == theirs_raw
    assert ours._model.data_streams[name].encoding == theirs._model.data_streams[name].encoding
    assert ours.streams[name].info == theirs.streams[name].info
    assert ours.streams[name].is_sealed()
    if definition.encoder.info()["type"] == "numeric":
        assert [ours.streams[name][i].tolist() for i in range(len(ours.streams[name]))] == [
            theirs.streams[name][i].tolist() for i in range(len(theirs.streams[name]))]


def test_the_first_document_already_declares_the_streams(store) -> None:
    """A reader loading the scan before ``prepare`` (blisswriter does, as soon as the scan is
    announced) finds every stream once it reads PREPARED."""
    definition, _ = CASES["float64 batches"]
    scan, _ = create_scan(store, IDENTITY, {"title": "early"}, [definition])
    early = store.load_scan(scan.key)  # CREATED
    assert set(early._model.data_streams) == {"a"}
    scan.prepare()
    early.update(timeout=1)
    assert set(early.streams) == {"a"} and early.info["title"] == "early"


def test_resync_finds_what_landed_and_what_redis_lost(store) -> None:
    definition, _ = CASES["float64 batches"]
    scan, writers = create_scan(store, IDENTITY, {}, [definition])
    scan.prepare()
    writer = writers["a"]
    writer.send(numpy.arange(3.0))
    assert resync([writer]) == {"a": 0} and writer.written == 3
    other = open_scan(store, scan.key)[1]["a"]  # another request
    other.send(numpy.arange(2.0))  # lands while the first writer never heard of it
    assert resync([writer]) == {"a": 2} and writer.written == 5
    store_client(store).xdel(writer.key, "3-1")  # Redis lost the end (an older snapshot)
    assert resync([writer]) == {"a": -2} and writer.written == 3


def test_a_scan_taken_over_goes_on_after_its_last_point(store) -> None:
    definition, _ = CASES["float64 batches"]
    scan, writers = create_scan(store, IDENTITY, {}, [definition])
    scan.prepare()
    scan.start()
    writers["a"].send(numpy.arange(4.0))
    again, taken = open_scan(store, scan.key)
    assert taken["a"].written == 4 and not taken["a"].sealed
    taken["a"].send(numpy.array([9.0]))
    seal(taken.values())
    again.stop()  # the info it was loaded with is written back unchanged
    again.close()
    read = store.load_scan(scan.key)
    assert read.streams["a"][:].tolist() == [0.0, 1.0, 2.0, 3.0, 9.0]
    assert open_scan(store, scan.key)[1]["a"].sealed


def test_seal_seals_each_stream_once_even_sealed_meanwhile(store) -> None:
    subscans, _ = CASES["sub-scan references (JSON)"]
    floats, _ = CASES["float64 batches"]
    scan, writers = create_scan(store, IDENTITY, {}, [subscans, floats])
    scan.prepare()
    writers["a"].send(numpy.arange(2.0))
    other = open_scan(store, scan.key)[1]  # another writer seals one stream first
    seal([other["a"]])
    seal(writers.values())
    assert all(writer.sealed for writer in writers.values())
    seals = [raw(store, writer.key)[-1] for writer in writers.values()]
    assert [fields[b"id"] for _, fields in seals] == [b"0", b"2"]  # one seal each, its length
    assert [len(raw(store, writer.key)) for writer in writers.values()] == [1, 2]
