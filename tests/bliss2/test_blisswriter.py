"""blisswriter, the HDF5 writer of Bliss 2, as a real process on our Bliss 2 sequences.

Which blisswriter: the PyPI 1.0.x and 2.0.0 releases do not import with blissdata 2.4.5 (1.0.x
imports ``blissdata.redis_engine.stream``, gone since blissdata 2.0, and 1.0.1 declares
``blissdata<1.1``; 2.0.0 imports ``blissdata.streams.lima2``, moved to ``blissdata-lima2``).
blisswriter 3.0.0 (``blissdata[lima2]~=2.4``) is the writer of Bliss 2.4's ``SCAN_SAVING.writer
= "mapping"``: ``blisswriter run <redis_url>`` follows every new scan of that Redis (no Beacon,
no Tango) and writes what the producer describes. A scan is saved when its identity has an
absolute ``path`` (the HDF5 file) and its info ``h5maps`` (``{file: blissdata.h5map Group}``,
read at PREPARED and again at CLOSED, the difference applied); datasets whose value is
``{"type": "stream", "stream": <stream name>}`` get that stream's points. blisswriter 3 does not
read ``GroupingMaster:SUBSCANS`` itself: a sequence's links to its sub-scans are items of its
``h5maps``, written by the producer (Bliss 2.4 computes them with ``blisswriter.mapping.h5map``
of its own source tree, not released on PyPI; ``tango_groups.bliss2.h5maps`` writes ours): links
named after each sub-scan's entry, as blisswriter 1.x/2.x name scan references, external when
the sub-scan has a file of its own (``seq3/seq3.h5::/3.1/1.1 -> scan1/scan1.h5::/1.1``), added
at CLOSED. blisswriter runs from its own environment, ``.venv-blisswriter``
(``bliss_envs.BLISSWRITER``): the test reads its files with the h5py of ``.venv``.

A race of blissdata 2.4.5's ``Scan._load`` (the JSON model is read before the state stream): a
reader that loads a scan while its producer calls ``prepare()`` gets state PREPARED with the
model of CREATED, no streams, and never refreshes them (``Missing stream ...``). blisswriter
loads each scan the moment it is announced, so a producer that prepares at once, as
``SequenceScan`` does, loses that race often. The producers here wait, before ``prepare()``,
until blisswriter has created the scan's directory (``ScanWriter._prepare`` does, once the scan
is loaded), each scan in a directory of its own. The device cannot wait (a client's ``Start``
creates and prepares at once): its sequences were saved in every run measured, but the race
remains possible until the sequence's first document holds its streams.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")
from bliss_envs import BLISSWRITER  # tests/

if not Path(BLISSWRITER).is_file():
    pytest.skip(f"no blisswriter at {BLISSWRITER}: ./dev.sh test builds .venv-blisswriter "
                "(tests/blisswriter-requirements.txt)", allow_module_level=True)

import h5py  # blissdata 2.x's dependency: in .venv with the bliss2 extra
from bliss2_data import write_scan
from tango_checks import wait_until

from tango_groups.bliss2 import SequenceScan
from tango_groups.bliss2.h5maps import saved_entry
from tango_groups.data.channel import ChannelSpec

WRITER_READY = 30.0  # seconds blisswriter may take to follow the Redis and save a first scan
FILE_DONE = 30.0  # seconds it may take to finish a file once its scans are closed
SUM = ChannelSpec("sum", "float64")


def entry(number: int, title: str, measurement: dict[str, Any]) -> dict[str, Any]:
    """The ``h5maps`` item of scan ``number`` (a sub-scan, written as Bliss 2.4 would): an
    NXentry with its title and its measurement (name -> stream name)."""
    return {"type": "group", "attributes": {"NX_class": "NXentry"}, "children": {
        "title": title,
        "measurement": {"type": "group", "attributes": {"NX_class": "NXcollection"}, "children": {
            name: {"type": "stream", "stream": stream} for name, stream in measurement.items()}}}}


def h5maps(path: Path, number: int, item: dict[str, Any]) -> dict[str, Any]:
    """``info["h5maps"]``: file ``path`` holding entry ``number``.1."""
    return {"h5maps": {str(path): {"type": "group", "attributes": {"NX_class": "NXroot"},
                                   "children": {f"{number}.1": item}}}}


def seen_by_writer(path: Path, timeout: float = WRITER_READY) -> None:
    """Once blisswriter has loaded the scan saved in ``path`` (it made its directory)."""
    wait_until(path.parent.exists, timeout, what=lambda: f"{path.parent} never made")


def saved_scan(store: Any, session: str, number: int, path: Path, points: int = 5,
               seen: Callable[[Path], None] = seen_by_writer) -> str:
    """A finished loopscan written with blissdata 2.x as Bliss 2.4 does for its ``mapping``
    writer: ``path`` in the identity, ``h5maps`` in the info. Its key."""
    item = entry(number, f"loopscan {number}",
                 {"diode": "diode:diode", "elapsed_time": "timer:elapsed_time"})
    return write_scan(store, session, number, points, path=str(path),
                      before_prepare=lambda: seen(path), **h5maps(path, number, item))


def when_written(path: Path, *datasets: str, timeout: float = FILE_DONE) -> dict[str, Any]:
    """The values of ``datasets`` (paths in the file, through links) once blisswriter has
    released ``path`` (it holds a write lock while a scan of it is open) and all are there."""
    found: dict[str, Any] = {}

    def done() -> bool:
        try:
            with h5py.File(path, "r") as file:
                found.update({name: file[name][()] for name in datasets})
                return True
        except (OSError, KeyError):  # not there yet, or still locked by the writer
            return False

    wait_until(done, timeout, what=lambda: path)
    return found


@pytest.fixture(scope="module")
def blisswriter(modules_redis, tmp_path_factory) -> Iterator[Path]:
    """``blisswriter run <url>``, the standalone writer, following the modules Redis (its log)."""
    from tango_groups.bliss2 import data_store

    directory = tmp_path_factory.mktemp("blisswriter")
    log = directory / "blisswriter.log"
    with open(log, "wb") as output:
        process = subprocess.Popen([BLISSWRITER, "run", modules_redis.url],
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        _until_following(data_store(modules_redis.url), directory, process, log)
        yield log
    finally:
        process.terminate()  # SIGTERM: it ends at once (SIGINT waits for open scans)
        process.wait(30)


def _until_following(store: Any, directory: Path, process: subprocess.Popen,
                     log: Path) -> None:
    """Probe scans until blisswriter loads one: until its first scan it reads the Redis from
    ``$`` afresh at every 1 s timeout, so a scan made in between is never seen."""
    deadline = time.monotonic() + WRITER_READY
    for attempt in range(1, 1000):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"blisswriter saved no probe: {log.read_text()}"
        probe = directory / f"probe{attempt}" / "probe.h5"
        try:
            saved_scan(store, "blisswriter_probe", attempt, probe, points=1,
                       seen=lambda path: seen_by_writer(path, timeout=2.0))
        except AssertionError:
            continue
        when_written(probe, f"{attempt}.1/measurement/diode")
        return


def test_a_sequence_scan_with_a_path_is_saved_with_links(store, session_name, blisswriter,
                                                         tmp_path):
    """``SequenceScan`` with a ``path`` writes its own ``h5maps`` (``bliss2.h5maps``): entry,
    custom channel, and at CLOSED ``end_time`` and the external links to its sub-scans."""
    files = {number: tmp_path / f"scan{number}" / f"scan{number}.h5" for number in (1, 2)}
    first, second = (saved_scan(store, session_name, number, files[number]) for number in files)
    path = tmp_path / "seq3" / "seq3.h5"
    sequence = SequenceScan(store, session=session_name, number=3, title="a sequence",
                            path=str(path), channels=[SUM],
                            on_created=lambda key: seen_by_writer(path))
    for key in (first, second):
        sequence.add_scan(key, saved_in=saved_entry(store.load_scan(key)))
    sequence.emit("sum", [1.0, 2.5, 4.0])
    sequence.end()

    data = when_written(path, "3.1/title", "3.1/end_time", "3.1/measurement/sum",
                        "3.1/1.1/measurement/diode", "3.1/2.1/measurement/diode")
    assert data["3.1/title"].decode() == "a sequence"
    assert data["3.1/end_time"].decode() == store.load_scan(sequence.key).info["end_time"]
    assert data["3.1/measurement/sum"].tolist() == [1.0, 2.5, 4.0]
    assert data["3.1/1.1/measurement/diode"].tolist() == [1, 2, 3, 4, 5]  # through the links
    assert data["3.1/2.1/measurement/diode"].tolist() == [2, 3, 4, 5, 6]
    with h5py.File(path, "r") as file:
        link = file["3.1"].get("1.1", getlink=True)
        assert (link.filename, link.path) == (str(files[1]), "/1.1")


def test_a_sequence_driven_through_tango_is_saved_with_its_sub_scans(
        store, session_name, blisswriter, tmp_path, start_device):
    """Its file derived from the properties as Bliss's basic scan saving does
    (BasePath/SavingTemplate/DataFilename.h5), sub-scans added by key and by a number whose scan
    is created afterwards, a custom channel: all read through the sequence's file."""
    files = {number: tmp_path / f"scan{number}" / f"scan{number}.h5" for number in (1, 3)}
    first = saved_scan(store, session_name, 1, files[1])
    proxy = start_device(BasePath=str(tmp_path)).proxy
    key = proxy.Start(json.dumps({"title": "through tango", "channels": ["sum"]}))
    path = tmp_path / session_name / "data.h5"
    assert proxy.SequenceNumber == 2 and store.load_scan(key).path == str(path)
    assert proxy.AddScan(first) == first and proxy.AddScan("3") == "pending:3"
    later = saved_scan(store, session_name, 3, files[3])
    wait_until(lambda: list(proxy.ScanNames) == [first, later])
    assert proxy.EmitChannel(([1.0, 2.5, 4.0], ["sum"])) == 3
    assert proxy.End() == "DONE"

    info = store.load_scan(key).info
    data = when_written(path, "2.1/title", "2.1/start_time", "2.1/end_time",
                        "2.1/measurement/sum", "2.1/1.1/measurement/diode",
                        "2.1/3.1/measurement/diode", "2.1/3.1/measurement/elapsed_time")
    assert data["2.1/title"].decode() == "through tango"
    assert [data[f"2.1/{name}"].decode() for name in ("start_time", "end_time")] == [
        info["start_time"], info["end_time"]]
    assert data["2.1/measurement/sum"].tolist() == [1.0, 2.5, 4.0]
    assert data["2.1/1.1/measurement/diode"].tolist() == [1, 2, 3, 4, 5]  # by key
    assert data["2.1/3.1/measurement/diode"].tolist() == [3, 4, 5, 6, 7]  # pending number
    assert len(data["2.1/3.1/measurement/elapsed_time"]) == 5


def test_scans_not_saved_get_no_link_and_the_sequence_and_group_are_saved(
        store, session_name, blisswriter, tmp_path, start_device):
    """A sub-scan without a file (no ``path``) is referenced in Redis, not linked; ``Start``'s
    ``path`` chooses the sequence's file; a group is saved with links to its saved members."""
    unsaved = write_scan(store, session_name, 1)
    file = tmp_path / "scan2" / "scan2.h5"
    saved = saved_scan(store, session_name, 2, file)
    proxy = start_device(BasePath=str(tmp_path)).proxy
    path = tmp_path / "given" / "sequence.h5"
    proxy.Start(json.dumps({"title": "some saved", "path": str(path)}))
    assert proxy.AddScan(unsaved) == unsaved and proxy.AddScan("2") == saved
    assert proxy.End() == "DONE"
    group = proxy.CreateGroup("1 2")
    assert store.load_scan(group).number == 4

    for file_path, number in ((path, 3), (tmp_path / session_name / "data.h5", 4)):
        data = when_written(file_path, f"{number}.1/title", f"{number}.1/2.1/measurement/diode")
        assert data[f"{number}.1/2.1/measurement/diode"].tolist() == [2, 3, 4, 5, 6]
        with h5py.File(file_path, "r") as h5:
            assert sorted(h5[f"{number}.1"]) == ["2.1", "end_time", "measurement", "start_time",
                                                 "title"]
