"""``bliss2.h5maps``: the file Bliss's basic scan saving would give a sequence, and the layout
blisswriter writes (checked against blissdata's own ``h5map`` models)."""

from __future__ import annotations

import getpass
import time

import pytest

pytest.importorskip("blissdata.h5map", reason="blissdata 2.x (tango_groups[bliss2])")
from blissdata.h5map import ExternalLink, Group, HDF5Item, SoftLink

from tango_groups.bliss2.h5maps import Entry, Saving, saved_entry, sequence_h5maps


def test_the_file_is_derived_as_bliss_basic_scan_saving_does() -> None:
    assert Saving().path("demo", 7, "sequence_of_scans") == "/tmp/scans/demo/data.h5"
    saving = Saving("/data/id00/", "{session}/{date}", "{scan_name}_{scan_number}")
    assert saving.path("demo", 7, "sequence_of_scans") == (
        f"/data/id00/demo/{time.strftime('%Y%m%d')}/sequence_of_scans_7.h5")
    user = Saving(template="{user_name}").path("s", 1, "x")
    assert user == f"/tmp/scans/{getpass.getuser()}/data.h5"
    assert Saving(data_filename="").path("demo", 7, "sequence_of_scans") is None  # saving off


@pytest.mark.parametrize("saving", [Saving("scans"), Saving(template="{proposal}"),
                                    Saving(data_filename="{scan_number"),
                                    Saving(data_filename="{0}")])
def test_what_makes_no_path_is_refused(saving: Saving) -> None:
    with pytest.raises(ValueError):
        saving.check()


def test_links_are_soft_in_the_same_file_external_otherwise() -> None:
    own = Entry("/data/demo/data.h5", 9)
    links = [Entry("/data/demo/data.h5", 7), Entry("/data/other.h5", 8), Entry("/data/b.h5", 8)]
    maps = sequence_h5maps(own, title="t", start_time="s", end_time="e", links=links,
                           channels={"sum": "custom_channels:sum"})
    root = HDF5Item.validate_python(maps["/data/demo/data.h5"])  # what blisswriter validates
    entry = root.children["9.1"]
    assert isinstance(root, Group) and entry.attributes["NX_class"].model_dump() == "NXentry"
    assert entry.children["7.1"] == SoftLink(target_path="/7.1")
    assert entry.children["8.1"] == ExternalLink(target_file="/data/other.h5", target_path="/8.1")
    assert entry.children["8.1_2"] == ExternalLink(target_file="/data/b.h5", target_path="/8.1")
    assert entry.children["measurement"].children["sum"].value.stream == "custom_channels:sum"


class Loaded:
    """What ``saved_entry`` reads of a loaded blissdata scan."""

    def __init__(self, path: str | None, info: dict) -> None:
        self.path, self.number, self.info = path, 4, info


def test_only_a_scan_blisswriter_saves_is_linked() -> None:
    maps = {"h5maps": {"/d/s.h5": {}}}
    assert saved_entry(Loaded("/d/s.h5", maps)) == Entry("/d/s.h5", 4)
    for path, info in ((None, maps), ("d/s.h5", {"h5maps": {"d/s.h5": {}}}), ("/d/s.h5", {}),
                       ("/d/other.h5", maps)):
        assert saved_entry(Loaded(path, info)) is None
