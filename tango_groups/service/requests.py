"""What clients send the SequenceManager, parsed and checked before anything is written.

Every function here either returns a typed request or raises ``ManagerError`` with a stable
reason and a message that says what to send instead. The limits are the
ones Tango and Redis impose further down, checked up front so that a refusal never leaves a
half-written sequence: channel dtypes a Tango attribute can carry, point shapes an attribute can
declare, scan numbers that fit Bliss's 64-bit counter, JSON that pickles without recursion, text
that Redis can store (UTF-8: no lone surrogate, which JSON's ``\\udc80`` escapes can make).

A reason is the bare name (``DuplicateScan``): the Tango device adds the prefix of its
``DevFailed`` reasons (``tango_groups.devices.refusals``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re
import unicodedata
from typing import Any

import numpy

from ..data.channel import ChannelSpec
from .reasons import ManagerError, Reason

__all__ = [
    "MAX_POINT_SIZE",
    "SCAN_KEY_PREFIX",
    "SUPPORTED_DTYPES",
    "StartRequest",
    "channel_json",
    "decode_npy",
    "parse_channel",
    "parse_channels",
    "parse_group_request",
    "parse_scan_reference",
    "parse_start_request",
]

CHANNEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
SUPPORTED_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                    "uint64", "float32", "float64")
MAX_POINT_SIZE = 2**24  # values in one point (a 4096 x 4096 image): a Tango image row is a point
MAX_NUMBER = 2**63 - 1  # Bliss counts scans with HINCRBY: a signed 64-bit integer
MAX_TITLE = 255
SCAN_KEY_PREFIX = "esrf:scan:"  # a Bliss 2 scan (blissdata 2.x's ESRF identity model)
MAX_NESTING = 32  # levels of lists and objects in scan_info
PATH_EXTENSIONS = (".h5", ".hdf5", ".nxs", ".nx5")  # what Start's path may end with
_DIGITS = re.compile(r"[0-9]+")


def parse_channel(item: Any, declared: dict[str, ChannelSpec] | None = None) -> ChannelSpec:
    """A custom channel from its JSON: a name, or an object with name, dtype, shape, unit.

    ``declared`` (by name): channels whose dtype, shape and unit are fixed beforehand; what the
    item leaves out comes from there, and anything different is refused."""
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or "name" not in item:
        raise ManagerError(Reason.BAD_CHANNEL, f"a channel is a name or an object with a \"name\", "
                           f"not {item!r:.80}")
    unknown = set(item) - {"name", "dtype", "shape", "unit"}
    if unknown:
        raise ManagerError(Reason.BAD_CHANNEL, f"unknown channel field(s) {sorted(unknown)}: use "
                           "name, dtype, shape, unit")
    name = item["name"]
    if not isinstance(name, str) or not CHANNEL_NAME.fullmatch(name):
        raise ManagerError(Reason.BAD_CHANNEL, f"invalid channel name {name!r:.80}: use a letter "
                           "then letters, digits or '_' (it names a Tango "
                           "attribute)")
    known = (declared or {}).get(name)
    if known is not None:
        fixed = {key: value for key, value in channel_json(known).items() if key != "name"}
        for field, value in fixed.items():
            if item.get(field, value) != value:
                raise ManagerError(Reason.BAD_CHANNEL, f"channel {name!r} is declared with "
                                   f"{field} {value} on this device, not "
                                   f"{item[field]!r:.40}: leave it out or "
                                   "choose another name")
        item = {**fixed, **item}
    dtype_name = item.get("dtype", "float64")
    if dtype_name not in SUPPORTED_DTYPES:
        raise ManagerError(Reason.BAD_CHANNEL, f"channel {name!r}: unsupported dtype "
                           f"{dtype_name!r:.40}: use one of "
                           f"{', '.join(SUPPORTED_DTYPES)}")
    shape = item.get("shape", [])
    if (not isinstance(shape, list) or len(shape) > 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
            or math.prod(shape) > MAX_POINT_SIZE):
        raise ManagerError(Reason.BAD_CHANNEL,
                           f"channel {name!r}: shape must be [] (scalar points), "
                           f"[n] or [n, m] with positive sizes and at most "
                           f"{MAX_POINT_SIZE} values per point, not "
                           f"{shape!r:.80}")
    unit = item.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise ManagerError(Reason.BAD_CHANNEL, f"channel {name!r}: unit must be a string")
    if unit is not None:
        _utf8(unit, f"channel {name!r}: unit", "BadChannel")
    return ChannelSpec(name, dtype_name, tuple(shape), unit)


def channel_json(spec: ChannelSpec) -> dict[str, Any]:
    """What ``parse_channel`` reads back: a custom channel's declaration as JSON."""
    return {"name": spec.name, "dtype": numpy.dtype(spec.dtype).name, "shape": list(spec.shape),
            "unit": spec.unit}


@dataclasses.dataclass(frozen=True)
class StartRequest:
    """``Start``'s argument, checked."""

    title: str | None = None
    scan_info: dict[str, Any] = dataclasses.field(default_factory=dict)
    channels: tuple[ChannelSpec, ...] = ()
    path: str | None = None  # the HDF5 file blisswriter saves it in ("": none; None: derived)


def parse_start_request(text: str, reserved_names: frozenset[str] = frozenset(),
                        declared: dict[str, ChannelSpec] | None = None) -> StartRequest:
    """``Start``'s argument: empty, a title, or JSON ``{"title", "scan_info", "channels",
    "path"}``.

    ``reserved_names`` (lower case) are names a channel may not take (the device's own
    attributes); ``declared`` as in ``parse_channel``."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):  # channels meant, most likely
        raise ManagerError(Reason.BAD_REQUEST,
                           f"Start takes a title or a JSON object, not the list "
                           f"{text:.80}: channels go in {{\"channels\": "
                           "[\"sum\"]}, a title in brackets in {\"title\": "
                           "\"[...]\"}")
    if not text.startswith("{"):
        return StartRequest(_title(text) if text else None)
    request = _json_object(text, "Start", {"title", "scan_info", "channels", "path"})
    title = request.get("title")
    if title is not None:
        if not isinstance(title, str) or not title.strip():
            raise ManagerError(Reason.BAD_REQUEST, "\"title\" must be a non-empty string")
        title = _title(title)
    channels = request.get("channels", [])
    if not isinstance(channels, list):
        raise ManagerError(Reason.BAD_REQUEST, "\"channels\" must be a list of channel names or "
                           "objects: [\"sum\"] or [{\"name\": \"sum\", "
                           "\"unit\": \"V\"}]")
    decls = tuple(parse_channel(item, declared) for item in channels)
    names = [decl.name.lower() for decl in decls]
    if len(set(names)) != len(names):
        raise ManagerError(Reason.BAD_CHANNEL, "channel names must be unique (case-insensitively)")
    for decl in decls:
        if decl.name.lower() in reserved_names:
            raise ManagerError(Reason.BAD_CHANNEL,
                               f"channel name {decl.name!r} is taken by a device "
                               "attribute: choose another name")
    return StartRequest(title, _scan_info(request), decls, _path(request.get("path")))


def _path(path: Any) -> str | None:
    """``Start``'s ``path``: an absolute HDF5 file name, "" (no file) or None (not given)."""
    if path is None or path == "":
        return path
    if not isinstance(path, str):
        raise ManagerError(Reason.BAD_REQUEST, f"\"path\" must be a string (an absolute HDF5 "
                           f"file name, or \"\" for none), not {path!r:.80}")
    _utf8(path, "path")
    if "\0" in path or not path.startswith("/") or not path.endswith(PATH_EXTENSIONS):
        raise ManagerError(Reason.BAD_REQUEST, f"\"path\" {path!r:.80} is not an absolute HDF5 "
                           f"file name: give /<directories>/<name> ending in "
                           f"{', '.join(PATH_EXTENSIONS)}, or \"\" to save no file")
    return os.path.normpath(path)


def parse_channels(items: list[str], reserved_names: frozenset[str] = frozenset()
                   ) -> dict[str, ChannelSpec]:
    """Channels declared one per item (a name, or a JSON object as in ``Start``), by name: a
    device's ``Channels`` property. Raises ``ManagerError`` (``BadChannel``)."""
    decls: dict[str, ChannelSpec] = {}
    for text in items:
        text = text.strip()
        decl = parse_channel(_json(text, "Channels") if text.startswith("{") else text)
        if decl.name.lower() in reserved_names or decl.name.lower() in map(str.lower, decls):
            raise ManagerError(Reason.BAD_CHANNEL, f"Channels: channel name {decl.name!r} is taken "
                               "(declared twice, or a device attribute's name)")
        decls[decl.name] = decl
    return decls


def parse_scan_reference(reference: Any) -> int | str:
    """A scan as ``AddScan`` or ``CreateGroup`` names it: a number (ASCII digits, 1 to 2**63-1),
    a db_name (``session:...:12_loopscan``) or a Bliss 2 key (``esrf:scan:<id>``)."""
    if isinstance(reference, int) and not isinstance(reference, bool):
        reference = str(reference)
    if not isinstance(reference, str) or not reference.strip():
        raise ManagerError(Reason.BAD_REQUEST, f"give a scan number or a scan db_name, not "
                           f"{reference!r:.80}")
    reference = reference.strip()
    if _DIGITS.fullmatch(reference):
        number = int(reference)
        if not 1 <= number <= MAX_NUMBER:
            raise ManagerError(Reason.BAD_REQUEST, f"scan number {reference:.40} is out of range "
                               f"(1 to {MAX_NUMBER})")
        return number
    _utf8(reference, "scan reference")
    if ":" not in reference or any(not part for part in reference.split(":")):
        raise ManagerError(Reason.BAD_REQUEST,
                           f"{reference!r:.80} is neither a scan number (digits) "
                           "nor a scan db_name (session:...:12_loopscan)")
    return reference


def parse_group_request(text: str) -> tuple[list[int | str], str | None, dict[str, Any]]:
    """``CreateGroup``'s argument: JSON ``{"scans", "title", "scan_info"}``, a JSON list, or
    numbers / db_names separated by commas or blanks. Returns (scans, title, scan_info)."""
    text = text.strip()
    title, scan_info, scans = None, {}, None
    if text.startswith("{"):
        request = _json_object(text, "CreateGroup", {"scans", "title", "scan_info"})
        scans, title = request.get("scans"), request.get("title")
        if title is not None:
            if not isinstance(title, str):
                raise ManagerError(Reason.BAD_REQUEST, "\"title\" must be a string")
            title = _title(title)
        scan_info = _scan_info(request)
    elif text.startswith("["):
        scans = _json(text, "CreateGroup")
    else:
        scans = text.replace(",", " ").split()
    if not isinstance(scans, list) or not scans:
        raise ManagerError(Reason.BAD_REQUEST, "give at least one scan: numbers or db_names, e.g. "
                           "'12 13' or '{\"scans\": [12, 13], \"title\": \"t\"}'")
    references = [parse_scan_reference(scan) for scan in scans]
    if len(set(references)) != len(references):
        raise ManagerError(Reason.DUPLICATE_SCAN, "a scan is listed twice")
    return references, title, scan_info


def decode_npy(payload: bytes) -> numpy.ndarray:
    """An array from ``.npy`` bytes (``numpy.save``); pickled object arrays are refused."""
    try:
        return numpy.load(io.BytesIO(payload), allow_pickle=False)
    except Exception as error:  # numpy raises ValueError, EOFError, OSError... on bad bytes
        raise ManagerError(Reason.BAD_DATA,
                           f"not .npy data without pickles ({type(error).__name__}: "
                           f"{error}): send the bytes numpy.save writes") from error


def _title(title: str) -> str:
    """A title names a node and is read back through Tango strings (Latin-1, C strings)."""
    if len(title) > MAX_TITLE:
        raise ManagerError(Reason.BAD_REQUEST, f"the title has {len(title)} characters; at most "
                           f"{MAX_TITLE}")
    try:
        title.encode("latin-1")
    except UnicodeEncodeError:
        unfit = True
    else:
        unfit = any(unicodedata.category(c) == "Cc" for c in title)
    if unfit:
        raise ManagerError(Reason.BAD_REQUEST, f"the title {title!r:.80} holds characters a Tango "
                           "string cannot carry: use Latin-1 text without control "
                           "characters")
    return title


def _scan_info(request: dict[str, Any]) -> dict[str, Any]:
    scan_info = request.get("scan_info", {})
    if not isinstance(scan_info, dict):
        raise ManagerError(Reason.BAD_REQUEST, "\"scan_info\" must be a JSON object")
    _storable(scan_info, "scan_info")
    return scan_info


def _storable(value: Any, field: str) -> None:
    """Every text in ``value`` (keys and values, at any depth) encodes as UTF-8, as Redis and
    RedisJSON store it (iterative, like ``_nesting``)."""
    stack = [(value, field)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                _utf8(key, f"a key in {where}")
                stack.append((child, f"{where}[{key!r:.40}]"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))
        elif isinstance(item, str):
            _utf8(item, where)


def _utf8(text: str, where: str, reason: str = "BadRequest") -> None:
    """Refuse ``text`` (``reason``, naming ``where`` it is) when it does not encode as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ManagerError(reason, f"{where}: {text!r:.80} holds a lone surrogate "
                                   f"({text[error.start]!r}), which is not Unicode text and "
                                   "cannot be stored: send valid text (a JSON escape of a "
                                   "character beyond U+FFFF is a \\uD8xx\\uDCxx pair)") from None


def _json(text: str, command: str) -> Any:
    too_deep = ManagerError(Reason.BAD_REQUEST, f"{command}: JSON nested deeper than {MAX_NESTING} "
                            "levels")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManagerError(Reason.BAD_REQUEST, f"{command}: invalid JSON: {error}") from None
    except RecursionError:
        raise too_deep from None
    if _nesting(value) > MAX_NESTING:
        raise too_deep
    return value


def _json_object(text: str, command: str, fields: set[str]) -> dict[str, Any]:
    request = _json(text, command)
    if not isinstance(request, dict):
        raise ManagerError(Reason.BAD_REQUEST, f"{command}: expected a JSON object")
    unknown = set(request) - fields
    if unknown:
        raise ManagerError(Reason.BAD_REQUEST, f"{command}: unknown field(s) {sorted(unknown)}; "
                           f"allowed: {sorted(fields)}")
    return request


def _nesting(value: Any) -> int:
    """How deeply lists and objects nest in a JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                stack.extend((child, depth + 1)
                             for child in (item.values() if isinstance(item, dict) else item))
    return deepest
