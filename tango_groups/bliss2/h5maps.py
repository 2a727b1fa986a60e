"""Where blisswriter saves a Bliss 2 sequence, and what it writes there: pure functions.

blisswriter 3.0 (Bliss 2's HDF5 writer, ``blisswriter run <redis_url>``) saves a scan whose
identity has an absolute ``path`` and whose ``info["h5maps"]`` maps each file to a
``blissdata.h5map`` group (read at PREPARED, read again at CLOSED and the difference applied):
groups, datasets (inline values, or ``{"type": "stream", "stream": <name>}`` fed from a stream
of the scan), soft and external links. Bliss 2.4 computes its ``h5maps`` with a
``blisswriter.mapping`` module that no published blisswriter has; this module writes a
sequence's own, shaped as Bliss's entry of a scan::

    /<number>.1                 NXentry
        title, start_time       (end_time from CLOSED on)
        measurement/<channel>   NXcollection: a custom channel, from custom_channels:<channel>
        <n>.1                   a sub-scan's entry, linked (added at CLOSED): a soft link when
                                it is in the same file, an external link otherwise

``Saving`` derives the file the way Bliss's basic ``SCAN_SAVING`` does:
``<base_path>/<template>/<data_filename>.h5``, the template and the file name formatted with
``{session}``, ``{scan_name}``, ``{scan_number}``, ``{date}`` (``%Y%m%d``) and ``{user_name}``;
an empty ``data_filename`` saves nothing.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import string
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["FIELDS", "Entry", "Saving", "saved_entry", "sequence_h5maps"]

FIELDS = ("session", "scan_name", "scan_number", "date", "user_name")  # as Bliss's template


@dataclasses.dataclass(frozen=True)
class Entry:
    """Where scan ``number`` is saved: its entry ``/<number>.1`` in ``file``."""

    file: str
    number: int

    @property
    def name(self) -> str:
        return f"{self.number}.1"


def saved_entry(scan: Any) -> Entry | None:
    """The entry of a loaded blissdata scan (its identity's ``path`` and ``number``, its
    ``info``) that blisswriter saves: an absolute ``path`` that its ``h5maps`` lists; None
    otherwise (a scan blisswriter skips)."""
    path = scan.path
    if not path or not os.path.isabs(path) or path not in (scan.info.get("h5maps") or {}):
        return None
    return Entry(path, int(scan.number))


def sequence_h5maps(entry: Entry, *, title: str, start_time: str, channels: Mapping[str, str],
                    end_time: str | None = None, links: Iterable[Entry] = ()) -> dict[str, Any]:
    """``info["h5maps"]`` of a sequence saved in ``entry``, its custom ``channels`` (name ->
    stream name): see the module docstring. Links are named after the sub-scans' entries (a
    second scan of the same number gets ``_2``...)."""
    children: dict[str, Any] = {"title": title, "start_time": start_time}
    if end_time is not None:
        children["end_time"] = end_time
    children["measurement"] = _group("NXcollection", {
        name: {"type": "stream", "stream": stream} for name, stream in channels.items()})
    for link in links:
        name, count = link.name, 1
        while name in children:
            count += 1
            name = f"{link.name}_{count}"
        children[name] = (
            {"type": "soft_link", "target_path": f"/{link.name}"} if link.file == entry.file
            else {"type": "external_link", "target_file": link.file,
                  "target_path": f"/{link.name}"})
    return {entry.file: _group("NXroot", {entry.name: _group("NXentry", children)})}


def _group(nx_class: str, children: dict[str, Any]) -> dict[str, Any]:
    return {"type": "group", "attributes": {"NX_class": nx_class}, "children": children}


@dataclasses.dataclass(frozen=True)
class Saving:
    """Bliss's basic scan saving: ``<base_path>/<template>/<data_filename>.h5`` (see the module
    docstring); ``check()`` refuses what cannot make a path."""

    base_path: str = "/tmp/scans"
    template: str = "{session}"
    data_filename: str = "data"

    def check(self) -> None:
        """ValueError naming what to change: a relative base path, an unknown field."""
        if not self.data_filename:
            return
        if not os.path.isabs(self.base_path):
            raise ValueError(f"the scan-saving base path {self.base_path!r} is not absolute")
        for text in (self.template, self.data_filename):
            try:
                fields = {name for _, name, _, _ in string.Formatter().parse(text) if name}
            except ValueError as error:
                raise ValueError(f"{text!r}: {error}") from None
            unknown = fields - set(FIELDS)
            if unknown:
                raise ValueError(f"{text!r} names {sorted(unknown)}: use "
                                 f"{', '.join('{' + name + '}' for name in FIELDS)}")

    def path(self, session: str, number: int, scan_name: str) -> str | None:
        """The file of scan ``number`` named ``scan_name``; None when saving is off."""
        if not self.data_filename:
            return None
        fields = {"session": session, "scan_name": scan_name, "scan_number": number,
                  "date": time.strftime("%Y%m%d"), "user_name": _user()}
        directory = os.path.join(self.base_path, self.template.format(**fields))
        return os.path.normpath(os.path.join(directory, self.data_filename.format(**fields)
                                             + ".h5"))


def _user() -> str:
    """The user of the process, as Bliss's ``{user_name}`` (``?`` when the system has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"
