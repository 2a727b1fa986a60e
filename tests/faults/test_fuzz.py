"""A hypothesis fuzz of every SequenceManager command through a DeviceProxy, against one real
server.

Each example is a short run of calls (Start, AddScan, EmitChannel, EmitChannelEncoded, End, Abort,
CreateGroup, Init, and "run a scan" in the device's session), arguments drawn from nasty values
(``"²"``, ``"9" * 30``, ``"-1"``, JSON nested thousands deep, float16 / longdouble / complex
dtypes, shapes like ``[100000000000]`` and ``[100000, 100000]``, empty, garbage, truncated or
lying ``.npy`` bytes, complex points for a float channel, the running sequence's own db_name,
names of nodes that are not scans...) mixed with valid ones drawn from what exists (finished
scans, their numbers, numbers not allocated yet, the declared channels).

Invariants:

* a refusal is a DevFailed whose reason starts with ``SequenceManager_`` (never ``PyDs_*`` or
  ``API_*``: no crash, no client timeout), and where the contract names the reason (an
  unsupported dtype, a number out of int64 range, the sequence itself, complex data for a float
  channel...) it is that one;
* a refusal writes nothing: every key of the data db is the same before and after (the one
  exception is ``ScansNotFinished``, which ends the sequence first);
* a ``scan_info`` of odd text (NUL, beyond Latin-1, astral, lone surrogates, in keys and values)
  is either accepted and read back as sent by the model's reader, or refused (``BadRequest``:
  text no UTF-8 encodes) with Redis unchanged, no scan number taken;
* after the run: the checker finds no scan or sequence without END other than the running one, no
  reference to a missing node, no orphan node key; the device shows what Redis holds (scans,
  numbers; the points of the channels its ``Channels`` property gives an attribute, when the
  sequence declared them the same way, else none); and it still works: a Start / End round trip
  gives DONE.

One server and one Redis serve every example (a device left unusable by an example is restarted,
after the failure has been recorded). ``TANGO_GROUPS_FUZZ_EXAMPLES`` sets how many examples run
(default 60; a soak: 1000).

``test_fuzz_every_command_bliss2`` is the same fuzz against a server in ``DataFormat bliss2``, the
data read back with blissdata 2.x (``Bliss2Model``: every scan but the running sequence CLOSED with
its streams sealed, Start answers an ``esrf:scan:`` key, ``ScanKey`` == ``SequenceName``);
``TANGO_GROUPS_FUZZ_EXAMPLES_BLISS2`` sets its examples (default 80: about 50 s here).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy
import pytest
import redis_checker
import tango
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from redis_checker import KeySnapshot
from sequence_server import SequenceServer, poll

from tango_groups.bliss1 import keys
from tango_groups.bliss1.node import get_node
from tango_groups.data.channel import ChannelSpec
from tango_groups.devices.channels import PointWindow

EXAMPLES = int(os.environ.get("TANGO_GROUPS_FUZZ_EXAMPLES", "60"))
EXAMPLES_BLISS2 = int(os.environ.get("TANGO_GROUPS_FUZZ_EXAMPLES_BLISS2", "80"))
PREFIX = "SequenceManager_"
WRITES_THEN_FAILS = {"SequenceManager_ScansNotFinished"}  # End: ends the sequence, then says so
INT64_MAX = 2**63 - 1
WEEK = 7 * 24 * 3600

pytestmark = [pytest.mark.slow, pytest.mark.timeout(max(600, max(EXAMPLES, EXAMPLES_BLISS2) * 20))]

# -- nasty values ---------------------------------------------------------------------------------
NASTY_STRINGS = [
    "", " ", "\t\n", "²", "³¹", "½", "9" * 30, "-1", "0", "00", "+1", "1e3", "1.0", "0x10",
    str(INT64_MAX), str(INT64_MAX + 1), str(2**64), " 7 ", "1 2", "1,2", "\x00", "a:b", ":", "*",
    "?", "[", "]", "{", "}", "null", "true", "[]", "{}", '{"scans": []}', "x" * 5000, "é", "\xa0",
    "tango_groups", "../../etc", "None",
]
GOOD_DTYPES = ["float64", "float32", "int8", "int16", "int32", "int64", "uint8", "uint16",
               "uint32", "uint64", "bool"]
BAD_DTYPES = ["float16", "longdouble", "complex64", "complex128", "object", "str", "U8", "S4",
              "datetime64[s]", "timedelta64", "V4", "float128", "e", "g", "O", "M8", "", "nope",
              "int128", "uint", "f2"]
ODD_DTYPES = [">f8", "<i4", "f", "d", "i", "int", "float", "b1", "?", "i8", "u1", 5, None, ["f8"],
              {"a": 1}]
GOOD_SHAPES = [[], [1], [3], [2, 2]]
UNDECLARABLE_SHAPES = [[100000000000], [100000, 100000], [2**31, 2], [2**63], [2**64],
                       [65536, 65536]]
ODD_SHAPES = [[0], [-1], [1, 1, 1], [1.5], [True], "3", None, [[2]], [10**8], {"n": 2}]


def nested(depth: int, inner: str = "1") -> str:
    """JSON ``{"a": {"a": ... inner ...}}`` ``depth`` deep."""
    return '{"a": ' * depth + inner + "}" * depth


def npy(array: numpy.ndarray) -> bytes:
    buffer = io.BytesIO()
    numpy.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def lying_npy(shape: tuple[int, ...], dtype: str = "u1") -> bytes:
    """A .npy header announcing ``shape`` followed by 8 bytes of data."""
    buffer = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(buffer, {
        "descr": numpy.lib.format.dtype_to_descr(numpy.dtype(dtype)),
        "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 8


NASTY_PAYLOADS = [
    b"", b"garbage", b"\x93NUMPY", npy(numpy.arange(3.0))[:-3], lying_npy((2**40,)),
    lying_npy((2**62,), "f8"), npy(numpy.array(["a", "b"])), npy(numpy.array([object()] * 2)),
    npy(numpy.array([1, 2], dtype="datetime64[s]")), npy(numpy.zeros(2, dtype=[("a", "f8")])),
    npy(numpy.arange(4.0, dtype=">f8")), npy(numpy.asfortranarray(numpy.ones((2, 3)))),
    npy(numpy.ones((1, 1, 1, 1))), npy(numpy.array([1e300])), npy(numpy.array([numpy.nan])),
    npy(numpy.array([2**63], dtype="u8")), npy(numpy.array([-1], dtype="i8")),
    npy(numpy.zeros(0)), npy(numpy.float16([1.5, 2.5])), npy(numpy.longdouble([1.5])),
]


# channels with a Tango attribute (the Channels property of the fuzzed device)
ATTRIBUTE_CHANNELS = {"x": {"name": "x"},
                      "roi": {"name": "roi", "dtype": "uint16", "shape": [2]},
                      "img": {"name": "img", "dtype": "int32", "shape": [2, 2]}}
WINDOW = 10_000  # the ChannelWindow property's default, which the fuzzed server keeps
OUT_OF_RANGE = ["9" * 30, str(INT64_MAX + 1), str(2**64)]  # ASCII digits beyond int64
NOT_ASCII_DIGITS = ["²", "³¹", "1²"]  # str.isdigit() says yes, the contract says no


def reasons(*names: str) -> frozenset[str]:
    return frozenset(PREFIX + name for name in names)


ANY_REASON = frozenset({"*"})  # must be refused, for whatever SequenceManager_ reason


# -- the world an example acts on -----------------------------------------------------------------
@dataclasses.dataclass
class Channel:
    name: str
    dtype: numpy.dtype
    shape: tuple[int, ...]


class Bliss1Model:
    """``DataFormat bliss1``: the data is 1.x nodes, read with ``redis_checker``."""

    name = "bliss1"
    key_prefix = ""  # what Start's answer starts with (db_names: the session's name)
    non_scan_reasons = reasons("NotAScan", "BadRequest")

    def __init__(self, server: SequenceServer) -> None:
        self.server = server

    def problems(self, running: str | None = None) -> list[str]:
        return redis_checker.problems(self.server.client, self.server.session_name,
                                      running=running)

    def references(self, sequence: str) -> tuple[list[str], list[int]]:
        return redis_checker.references(self.server.client, sequence)

    def channel_points(self, sequence: str, channel: str) -> numpy.ndarray:
        return redis_checker.channel_points(self.server.client, sequence, channel)

    def scan_info(self, sequence: str) -> dict[str, Any]:
        return dict(get_node(sequence, connection=self.server.client).info)

    def non_scans(self, world: World) -> list[str]:
        """Names of nodes that are not scans."""
        session = self.server.session
        names = [session.name, session.scan_saving_db_name,
                 f"{world.scans[0][0]}:timer", f"{world.scans[0][0]}:timer:elapsed_time"]
        if world.sequence:
            master = f"{world.sequence}:{keys.GROUPING_MASTER}"
            names += [master, f"{master}:{keys.SCANS_CHANNEL}", f"{master}:scan_numbers"]
        return names


class Bliss2Model(Bliss1Model):
    """``DataFormat bliss2``: the data is blissdata 2.x scans, read with ``bliss2_data`` (Start
    answers the sequence's ``esrf:scan:`` key, also in ``ScanKey``)."""

    name = "bliss2"
    key_prefix = "esrf:scan:"
    non_scan_reasons = reasons("NotAScan", "BadRequest", "UnknownScan")

    def __init__(self, server: SequenceServer) -> None:
        super().__init__(server)
        import bliss2_data  # blissdata 2.x: only for this model
        from blissdata.exceptions import ScanNotFoundError

        self.data, self.not_found = bliss2_data, ScanNotFoundError

    def problems(self, running: str | None = None) -> list[str]:
        return self.data.problems(self.server.store, self.server.session_name, running=running)

    def references(self, sequence: str) -> tuple[list[str], list[int]]:
        return self.data.references(self.server.store, sequence)

    def channel_points(self, sequence: str, channel: str) -> numpy.ndarray:
        return self.data.channel_points(self.server.store, sequence, channel)

    def scan_info(self, sequence: str) -> dict[str, Any]:
        return dict(self.server.store.load_scan(sequence).info)

    def non_scans(self, world: World) -> list[str]:
        """Names that are not scan keys: the session, the scan history, stream keys, a key of
        no scan, a 1.x db_name."""
        names = [self.server.session_name, "_SCAN_HISTORY_", "esrf:scan:" + "0" * 26,
                 "esrf:stream:" + "0" * 26, f"{self.server.session_name}:tmp:scans:1_loopscan"]
        for key in filter(None, [world.sequence, world.scans[0][0]]):
            try:
                names += [stream.key for stream in self.server.store.load_scan(key)
                          .streams.values()]
            except self.not_found:  # a sequence lost with its Redis data
                continue
        return names


class World:
    """What exists, to resolve references against (refreshed from the device after every call).

    Strategies never look at it (hypothesis replays draws and needs them independent of state):
    they draw ``Ref``s, which ``resolve`` turns into names when the call runs.
    """

    def __init__(self, server: SequenceServer, model: type[Bliss1Model] = Bliss1Model) -> None:
        self.server = server
        self.model = model(server)
        self.initial_scans: list[tuple[str, int]] = []  # what every example starts with
        self.scans: list[tuple[str, int]] = []  # finished scans: (db_name, number)
        self.ended: list[str] = []  # ended sequences and groups
        self.running = False
        self.sequence = ""
        self.sequence_number = 0
        self.channels: dict[str, Channel] = {}  # declared by the current (or last) sequence
        self.log: list[str] = []

    def __repr__(self) -> str:
        return f"World(running={self.running}, sequence={self.sequence!r})"

    def reset(self, scans: list[tuple[str, int]]) -> None:
        """Start an example from the same world (the same draws resolve to the same kinds)."""
        self.scans, self.ended, self.log = list(scans), [], []
        self.refresh()

    def refresh(self) -> None:
        proxy = self.server.proxy
        try:
            self.running = proxy.State() == tango.DevState.RUNNING
            self.sequence = proxy.SequenceName
            self.sequence_number = int(proxy.SequenceNumber)
        except tango.DevFailed as failure:
            error = failure.args[0]
            raise AssertionError(f"the device's State / SequenceName / SequenceNumber cannot be "
                                 f"read after {self.log}: {error.reason}: {error.desc}") from None
        if not self.running and self.sequence and self.sequence not in self.ended:
            self.ended.append(self.sequence)


@dataclasses.dataclass(frozen=True)
class Ref:
    """A name taken from the world when the call runs: ``kind`` says which, ``index`` which one.
    """

    kind: str
    index: int = 0


def resolve_reference(world: World, item: str | Ref) -> tuple[str, frozenset[str] | None]:
    """(the AddScan / CreateGroup reference, the reasons the contract allows for it while a
    sequence runs, None when it may be accepted)."""
    if isinstance(item, str):
        if item in OUT_OF_RANGE:
            return item, reasons("BadRequest")
        if item in NOT_ASCII_DIGITS:
            return item, reasons("BadRequest", "UnknownScan")
        return item, None
    pick = item.index
    if item.kind == "scan":
        return world.scans[pick % len(world.scans)][0], None
    if item.kind == "scan_number":
        return str(world.scans[pick % len(world.scans)][1]), None
    if item.kind == "ended":
        names = world.ended or [name for name, _ in world.scans]
        return names[pick % len(names)], None
    if item.kind == "non_scan":  # (the session's root name is not even a db_name of a scan)
        names = world.model.non_scans(world)
        return names[pick % len(names)], world.model.non_scan_reasons
    if item.kind == "unallocated":  # a scan that has not run yet: pending
        return str(world.server.last_scan_number() + 1 + pick % 3), None
    if item.kind == "sequence":  # the running sequence itself (or the last one)
        return world.sequence, reasons("NotAScan") if world.running else None
    if item.kind == "sequence_number":
        allowed = reasons("NotAScan", "UnknownScan") if world.running else None
        return str(world.sequence_number), allowed
    raise AssertionError(f"unknown reference kind {item.kind}")


def channel_name(world: World, item: str | Ref) -> str:
    if isinstance(item, str):
        return item
    names = list(world.channels) or ["x"]
    return names[item.index % len(names)]


@dataclasses.dataclass(frozen=True)
class Call:
    """One drawn call: the command and a world-independent description of its argument."""

    command: str
    spec: Any = None
    refuse: bool = False  # the contract refuses this argument whatever the world (Start)
    read_back: bool = False  # accepted: the sequence's scan_info holds what was sent (Start)

    def __repr__(self) -> str:
        text = repr(self.spec)
        text = text if len(text) < 120 else text[:120] + f"...({len(text)} chars)"
        return f"{self.command}({text})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # in hypothesis's reports
        printer.text(repr(self))


def resolve(world: World, call: Call) -> tuple[Any, frozenset[str] | None]:
    """(the command's argument, None or the reasons it must be refused with: ``ANY_REASON`` for
    any ``SequenceManager_*`` one)."""
    running = world.running
    if call.command == "Start":
        if running:  # refused whatever the request; which check comes first is free
            return call.spec, reasons("AlreadyRunning", "BadChannel", "BadRequest")
        return call.spec, reasons("BadChannel", "BadRequest") if call.refuse else None
    if call.command == "AddScan":
        reference, allowed = resolve_reference(world, call.spec)
        return reference, (allowed if running else ANY_REASON)
    if call.command == "CreateGroup":
        form, items, extra = call.spec
        chosen = [resolve_reference(world, item)[0] for item in items]
        if form == "blank":
            return " ".join(chosen), None if "".join(chosen).strip() else reasons("BadRequest")
        if form == "list":
            return json.dumps(chosen), None if chosen else reasons("BadRequest")
        if form == "object":  # text Redis cannot store: refused before the scans are read
            return (json.dumps({"scans": chosen, **extra}),
                    None if storable(extra["scan_info"]) else reasons("BadRequest"))
        return extra, (reasons("BadRequest") if form == "nested" else None)
    if call.command == "EmitChannel":
        values, labels = call.spec
        names = [channel_name(world, label) for label in labels]
        if isinstance(values, tuple):  # ("fit", n): n points of ones for the first channel
            channel = world.channels.get(names[0]) if names else None
            size = math.prod(channel.shape) if channel else 1
            values = [1.0] * (values[1] * size)
        return (values, names), None if running else ANY_REASON
    if call.command == "EmitChannelEncoded":
        name_item, (kind, detail) = call.spec
        name = channel_name(world, name_item)
        channel = world.channels.get(name) if running else None
        allowed = None if running else ANY_REASON
        if kind == "valid":
            dtype, shape = (channel.dtype, channel.shape) if channel else (numpy.float64, ())
            payload = npy(numpy.ones((detail, *shape), dtype=dtype))
        elif kind == "complex":
            payload = npy(numpy.array([1 + 2j, 3 - 1j]))
            if channel is not None and channel.dtype.kind != "c":
                allowed = reasons("BadData")  # the imaginary part may not be dropped silently
        else:
            payload = NASTY_PAYLOADS[detail]
            if payload == b"" and channel is not None:
                allowed = reasons("BadData")
        return (name, payload), allowed
    if call.command in ("End", "Abort"):
        return None, None if running else reasons("NotRunning")
    return None, None  # Init, RunScan


# -- strategies -----------------------------------------------------------------------------------
def text(max_size: int) -> st.SearchStrategy[str]:
    """Strings a Tango client can send (DevString is Latin-1 on the wire; JSON escapes the
    rest)."""
    return st.text(st.characters(max_codepoint=255), max_size=max_size)


def refs(kind: str) -> st.SearchStrategy[Ref]:
    return st.integers(0, 15).map(lambda index: Ref(kind, index))


channel_names = st.one_of(
    st.sampled_from(["x", "y", "roi", "a1", "X", "State", "ScanCount", "status", "a:b", "", "1x",
                     "é", "x" * 63, "x" * 64, "init"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True))
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(json_leaves, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)),
    max_leaves=8)
scan_infos = st.one_of(
    st.dictionaries(st.sampled_from(["sample", "scan_nb", "state", "title", "node_type", "group",
                                     "type", "npoints", "name", "db_name", "é", ""]),
                    json_values, max_size=3),
    json_values)
# text of every kind in scan_info keys and values: NUL, beyond Latin-1, astral, lone surrogates
# (JSON's "\udc80" escape: no UTF-8 encodes it, so Start and CreateGroup must refuse it)
odd_text = st.text(st.one_of(st.sampled_from(["\x00", "\udc80", "\ud800", "\u00e9", "\u4e2d",
                                              "\U0001f600", "a"]),
                             st.characters(codec=None, categories=None)), max_size=6)
odd_scan_infos = st.dictionaries(
    odd_text.map(lambda key: "k" + key),  # "k": never a key the writer sets (scan_nb, title...)
    st.recursive(odd_text | st.integers(-(2**31), 2**31), lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(odd_text, children, max_size=3)),
        max_leaves=6), max_size=3)


def storable(value: Any) -> bool:
    """Whether every text of a JSON value encodes as UTF-8 (what Redis and RedisJSON store)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


scan_references = st.one_of(
    st.sampled_from(NASTY_STRINGS), text(max_size=12), st.sampled_from(OUT_OF_RANGE),
    st.sampled_from(NOT_ASCII_DIGITS), refs("scan"), refs("scan_number"), refs("ended"),
    refs("non_scan"), refs("unallocated"), st.just(Ref("sequence")),
    st.just(Ref("sequence_number")))
channel_refs = st.one_of(refs("channel"), refs("channel"), channel_names)


@st.composite
def channel_declarations(draw: st.DrawFn) -> tuple[Any, bool]:
    """(a channel declaration, whether the contract says Start must refuse it)."""
    kind = draw(st.sampled_from(["good", "good", "bad_dtype", "undeclarable", "odd"]))
    unique = "c" + draw(st.from_regex(r"[a-z0-9]{0,5}", fullmatch=True))
    if kind == "good":
        return {"name": draw(channel_names), "dtype": draw(st.sampled_from(GOOD_DTYPES)),
                "shape": draw(st.sampled_from(GOOD_SHAPES))}, False
    if kind == "bad_dtype":
        return {"name": unique, "dtype": draw(st.sampled_from(BAD_DTYPES))}, True
    if kind == "undeclarable":
        return {"name": unique, "dtype": draw(st.sampled_from(GOOD_DTYPES)),
                "shape": draw(st.sampled_from(UNDECLARABLE_SHAPES))}, True
    declaration: Any = draw(st.one_of(
        channel_names,
        st.fixed_dictionaries({"name": channel_names}, optional={
            "dtype": st.sampled_from(ODD_DTYPES + GOOD_DTYPES),
            "shape": st.sampled_from(ODD_SHAPES + GOOD_SHAPES),
            "unit": st.one_of(st.text(max_size=4), st.integers(), st.none())}),
        st.sampled_from([5, None, [], {"nom": "x"}, {"name": "x", "extra": 1}])))
    return declaration, False


@st.composite
def valid_starts(draw: st.DrawFn) -> Call:
    """A Start with channels that points can be emitted on: those of the Channels property as
    it declares them (they have an attribute; declared otherwise, Start refuses them), others
    of any supported dtype and shape."""
    names = draw(st.lists(st.sampled_from(["x", "y", "roi", "img", "z"]), min_size=1,
                          max_size=4, unique=True))
    channels = [ATTRIBUTE_CHANNELS[name] if name in ATTRIBUTE_CHANNELS else
                {"name": name, "dtype": draw(st.sampled_from(GOOD_DTYPES)),
                 "shape": draw(st.sampled_from(GOOD_SHAPES))} for name in names]
    title = "t" + draw(text(max_size=12))  # a title must not be blank
    return Call("Start", json.dumps({"title": title, "channels": channels}))


@st.composite
def start_calls(draw: st.DrawFn) -> Call:
    kind = draw(st.sampled_from(["plain", "valid", "valid", "request", "request", "nested",
                                 "garbage", "text"]))
    if kind == "valid":
        return draw(valid_starts())
    if kind == "text":
        info = draw(odd_scan_infos)
        return Call("Start", json.dumps({"title": "t", "scan_info": info}), not storable(info),
                    read_back=True)
    if kind == "plain":
        return Call("Start", draw(st.one_of(st.sampled_from(["", "  ", "my title", "²"]),
                                            text(max_size=20))))
    if kind == "request":
        request: dict[str, Any] = {}
        refuse = False
        if draw(st.booleans()):
            request["title"] = draw(st.one_of(st.text(max_size=12), json_values))
        if draw(st.booleans()):
            request["scan_info"] = draw(scan_infos)
        if draw(st.booleans()):
            declared = draw(st.lists(channel_declarations(), max_size=3))
            request["channels"] = [declaration for declaration, _ in declared]
            refuse = any(bad for _, bad in declared)
        return Call("Start", json.dumps(request), refuse)
    if kind == "nested":
        depth = draw(st.sampled_from([10, 200, 5000, 100_000]))
        place = draw(st.sampled_from(["scan_info", "title", "channels"]))
        return Call("Start", "{" + f'"{place}": ' + nested(depth) + "}", depth >= 5000)
    return Call("Start", draw(st.sampled_from(
        ["{", "{}", "[]", "null", "[1]", '{"channels": 5}', '{"title": 5}', '{"scan_info": []}',
         '{"titel": "x"}', '{"channels": [{"name": "x"}], "x": 1}',
         '{"title": "NaN", "scan_info": {"v": NaN, "w": Infinity}}', '{"title": "\\ud800"}',
         json.dumps({"channels": [f"c{i}" for i in range(300)]})])))


@st.composite
def create_group_calls(draw: st.DrawFn) -> Call:
    form = draw(st.sampled_from(["blank", "list", "object", "nasty", "nested"]))
    items = tuple(draw(st.lists(scan_references, max_size=4)))
    if form == "object":
        extra = {"title": draw(st.one_of(st.text(max_size=8), json_values)),
                 "scan_info": draw(st.one_of(scan_infos, odd_scan_infos))}
    elif form == "nested":
        extra = '{"scans": [1], "scan_info": ' + nested(100_000) + "}"
    elif form == "nasty":
        extra = draw(st.sampled_from(
            NASTY_STRINGS + ['{"scans": "1"}', "[1, true]", "[[1]]", '{"scans": [null]}']))
    else:
        extra = None
    return Call("CreateGroup", (form, items, extra))


emit_values = st.one_of(
    st.integers(0, 3).map(lambda count: ("fit", count)),
    st.integers(1, 3).map(lambda count: ("fit", count)),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8),
    st.lists(st.integers(-(2**64), 2**64).map(float), max_size=4),
    st.sampled_from([(0.0,) * 100_000, (0.5,) * 7, ()]).map(list))
emit_labels = st.one_of(refs("channel").map(lambda item: (item,)),
                        refs("channel").map(lambda item: (item,)),
                        channel_refs.map(lambda item: (item,)),
                        st.sampled_from([(), ("State",), ("",)]),
                        channel_refs.map(lambda item: (item, item)))
payloads = st.one_of(st.tuples(st.just("valid"), st.integers(0, 3)),
                     st.tuples(st.just("valid"), st.integers(1, 3)),
                     st.just(("complex", None)),
                     st.tuples(st.just("nasty"), st.integers(0, len(NASTY_PAYLOADS) - 1)))

calls = st.one_of(
    start_calls(), start_calls(),
    st.builds(Call, st.just("AddScan"), scan_references),
    st.builds(Call, st.just("AddScan"), scan_references),
    st.builds(Call, st.just("EmitChannel"), st.tuples(emit_values, emit_labels)),
    st.builds(Call, st.just("EmitChannel"), st.tuples(emit_values, emit_labels)),
    st.builds(Call, st.just("EmitChannelEncoded"), st.tuples(channel_refs, payloads)),
    st.builds(Call, st.just("EmitChannelEncoded"), st.tuples(channel_refs, payloads)),
    st.builds(Call, st.sampled_from(["End", "Abort", "Init", "RunScan", "RunScan"])),
    create_group_calls(),
)


# -- running calls --------------------------------------------------------------------------------
def declared_channels(request: str) -> dict[str, Channel]:
    """The channels a Start request that succeeded declared."""
    try:
        items = json.loads(request).get("channels", []) if request.strip().startswith("{") else []
    except (ValueError, AttributeError):
        return {}
    found = {}
    for item in items:
        item = {"name": item} if isinstance(item, str) else item
        try:
            found[item["name"]] = Channel(item["name"], numpy.dtype(item.get("dtype", "float64")),
                                          tuple(item.get("shape", [])))
        except (TypeError, KeyError, ValueError):
            pass  # the device accepted something this model does not understand: no data for it
    return found


def statistics(outcome: str) -> None:
    """Count an outcome in hypothesis's statistics (--hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(outcome)


def settle(world: World) -> None:
    """Wait until every allocated pending number has been referenced (the device writes those in
    the background: a snapshot taken meanwhile would blame the next call)."""
    if not world.running:
        return
    last = world.server.last_scan_number()
    proxy = world.server.proxy
    poll(lambda: all(int(number) > last for number in proxy.PendingScans), 10,
         "the device to reference the pending scans that ran",
         lambda: f"pending {list(proxy.PendingScans)}, last scan {last}")


def run(world: World, call: Call) -> None:
    """Run one call; assert the invariants of a single call."""
    server, proxy = world.server, world.server.proxy
    if call.command == "RunScan":
        world.log.append("RunScan")
        scan = server.scan(1)
        world.scans.append((scan.db_name, scan.scan_number))
        settle(world)
        return
    argument, allowed = resolve(world, call)
    shown = repr(argument)
    world.log.append(f"{call.command}({shown if len(shown) < 100 else shown[:100] + '...'})")
    before = KeySnapshot.take(server.data_client)
    try:
        if argument is None:
            result = proxy.command_inout(call.command)
        else:
            result = proxy.command_inout(call.command, argument)
    except tango.DevFailed as failure:
        error = failure.args[0]
        world.log[-1] += f" -> {error.reason}"
        statistics(f"{call.command}: {error.reason}")
        assert error.reason.startswith(PREFIX), (
            f"{world.log[-1]}: {error.desc}\nrun: {world.log}")
        assert call.command != "Init", f"Init failed: {error.desc}"
        if allowed is not None and allowed != ANY_REASON:
            assert error.reason in allowed, (
                f"{world.log[-1]}, expected one of {sorted(allowed)}: {error.desc}\n"
                f"run: {world.log}")
        if error.reason not in WRITES_THEN_FAILS:
            changes = KeySnapshot.take(server.data_client).diff(before)
            assert changes == [], f"{world.log[-1]} was refused but wrote {changes}"
    else:
        world.log[-1] += f" -> {str(result)[:80]!r}"
        statistics(f"{call.command}: accepted")
        assert allowed is None, f"{world.log[-1]} was accepted; run: {world.log}"
        if call.command == "Start":
            assert str(result).startswith(world.model.key_prefix), world.log
            world.channels = declared_channels(argument)
            if call.read_back:  # what was sent, as a reader of the data model reads it
                sent = json.loads(argument)["scan_info"]
                found = world.model.scan_info(str(result))
                assert {key: found.get(key) for key in sent} == sent, world.log
        elif call.command == "CreateGroup":
            world.ended.append(result)
    world.refresh()


def read(world: World, name: str) -> Any:
    """An attribute's value (an empty spectrum as []); failing to read it fails the test."""
    try:
        value = world.server.proxy.read_attribute(name).value
    except tango.DevFailed as failure:
        error = failure.args[0]
        raise AssertionError(f"attribute {name} cannot be read after {world.log}: "
                             f"{error.reason}: {error.desc}") from None
    return [] if value is None else value


def check_world(world: World) -> None:
    """The checker finds nothing wrong; the device shows what Redis holds."""
    running = world.sequence if world.running else None
    found = world.model.problems(running=running)
    assert found == [], f"the checker found {found}; run: {world.log}"
    if world.running:
        names, numbers = world.model.references(world.sequence)
        assert list(read(world, "ScanNames")) == names, world.log
        assert list(read(world, "ScanNumbers")) == numbers, world.log
    key = world.sequence if world.model.name == "bliss2" else ""
    assert read(world, "ScanKey") == key, world.log
    for name, declared in ATTRIBUTE_CHANNELS.items():
        # the attribute shows the current (or last) sequence's points when it declared the
        # channel (as the Channels property does: Start refuses other declarations), else none
        decl = Channel(name, numpy.dtype(declared.get("dtype", "float64")),
                       tuple(declared.get("shape", [])))
        empty = numpy.empty((0, *decl.shape), dtype=decl.dtype)
        expected = [empty]
        if world.sequence and world.channels.get(name) == decl:
            # the newest points the attribute's window holds (devices.channels: ChannelWindow)
            window = PointWindow(ChannelSpec(name, decl.dtype, decl.shape), WINDOW).size
            stored = world.model.channel_points(world.sequence, name)[-window:]
            # running: the sequence's points; idle: the last sequence's (or none, after Init)
            expected = [stored] if world.running else [stored, empty]
        shown = numpy.asarray(read(world, name))
        assert any(shown.size == points.size and numpy.array_equal(
            shown.reshape(points.shape), points, equal_nan=points.dtype.kind == "f")
            for points in expected), (
            f"attribute {name} shows {shown.tolist()}, expected one of "
            f"{[points.tolist() for points in expected]}; run: {world.log}")


def round_trip(world: World) -> None:
    """The device still works: Abort what runs, then a Start / End gives DONE."""
    proxy = world.server.proxy
    if world.running:
        assert proxy.Abort() == "USER_ABORTED", world.log
    proxy.Start("round trip")
    assert proxy.End() == "DONE", world.log
    world.channels = {}
    world.refresh()
    found = world.model.problems()
    assert found == [], f"after a round trip, the checker found {found}; run: {world.log}"


# -- the fuzz -------------------------------------------------------------------------------------
def fuzz_server(tango_db, data_format: str) -> Iterator[World]:
    """One server for every example of a fuzz, with two finished scans in its session."""
    # a week of TTL: nothing the run wrote expires while it runs (an expired key would read as
    # a key deleted by the call that happened to run then)
    server = SequenceServer(tango_db.tango_host, data_format=data_format, DataExpiration=WEEK,
                            ParentExpiration=WEEK,
                            Channels=[json.dumps(decl) for decl in ATTRIBUTE_CHANNELS.values()]
                            ).start()
    try:
        world = World(server, Bliss2Model if data_format == "bliss2" else Bliss1Model)
        world.initial_scans = [(scan.db_name, scan.scan_number)
                               for scan in (server.scan(1), server.scan(1))]
        yield world
    finally:
        server.close()


@pytest.fixture(scope="module")
def fuzz_world(tango_db) -> Iterator[World]:
    yield from fuzz_server(tango_db, "bliss1")


@pytest.fixture(scope="module")
def fuzz_world_bliss2(tango_db) -> Iterator[World]:
    pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x "
                                                               "(tango_groups[bliss2])")
    yield from fuzz_server(tango_db, "bliss2")


def make_usable(server: SequenceServer) -> None:
    """Bring the device back to ON, every attribute readable, for the next example (a previous
    one broke it, and failed): Abort, Init, a Start / End (the last sequence's name may be what
    is unreadable), else restart the server."""

    def usable() -> bool:
        proxy = server.proxy
        if proxy.State() == tango.DevState.RUNNING:
            proxy.Abort()
        if proxy.State() != tango.DevState.ON:
            proxy.Init()
        try:
            proxy.read_attribute("SequenceName"), proxy.Status()  # either may fail
        except tango.DevFailed:
            proxy.Start("reset")
            proxy.End()
        proxy.read_attribute("SequenceName"), proxy.Status()
        return proxy.State() == tango.DevState.ON

    try:
        if usable():
            return
    except tango.DevFailed:
        pass
    server.restart()


def fuzz(world: World, data: st.DataObject) -> None:
    """One example: a run of calls from a usable device, then the checks and a round trip."""
    make_usable(world.server)
    world.reset(world.initial_scans)
    if data.draw(st.booleans(), label="start with channels first"):
        run(world, data.draw(valid_starts(), label="call"))
    for _ in range(data.draw(st.integers(1, 8), label="calls")):
        run(world, data.draw(calls, label="call"))
    check_world(world)
    round_trip(world)


FUZZ_SETTINGS = {"deadline": None, "database": None,
                 "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example]}


@settings(max_examples=EXAMPLES, **FUZZ_SETTINGS)
@given(data=st.data())
def test_fuzz_every_command(fuzz_world: World, data: st.DataObject) -> None:
    fuzz(fuzz_world, data)


@settings(max_examples=EXAMPLES_BLISS2, **FUZZ_SETTINGS)
@given(data=st.data())
def test_fuzz_every_command_bliss2(fuzz_world_bliss2: World, data: st.DataObject) -> None:
    """The same fuzz in DataFormat bliss2, judged by blissdata 2.x (``Bliss2Model``)."""
    fuzz(fuzz_world_bliss2, data)


# -- what the fuzz found, replayed every time ---------------------------------------------------
@pytest.mark.parametrize("title", ["a\x00b", "\u0100", "\ud800", "\U000ce51b", "\x1b[31m"],
                         ids=["NUL", "not_latin1", "lone_surrogate", "astral", "escape"])
def test_titles_a_tango_string_cannot_carry(fuzz_world: World, title: str) -> None:
    """A title (sent escaped in JSON) that a Tango string cannot carry as it is: Start refuses it
    (a SequenceManager_ reason, nothing written) or the sequence it creates is one a client can
    use: SequenceName is readable and names the node in Redis, End closes it."""
    world = fuzz_world
    make_usable(world.server)
    world.reset(world.initial_scans)
    run(world, Call("Start", json.dumps({"title": title})))
    if world.running:
        assert get_node(world.sequence, connection=world.server.client) is not None, (
            f"SequenceName {world.sequence!r} is not the db_name of a node in Redis")
        check_world(world)
    round_trip(world)


@pytest.mark.parametrize("model", ["bliss1", "bliss2"])
@pytest.mark.parametrize("info", [{"\udc80": 1}, {"k": {"a": ["\ud800x"]}},
                                  {"k\x00": "\u4e2d\x00", "k\u00e9": {"\U0001f600": ["\x00"]}}],
                         ids=["surrogate_key", "surrogate_value", "nul_and_beyond_latin1"])
def test_scan_info_text_is_stored_as_sent_or_refused(request, model: str, info: dict) -> None:
    """What the text strategy draws, replayed in both data models: Start and CreateGroup refuse
    a lone surrogate (BadRequest, Redis unchanged: no scan number taken) and store the rest as
    sent (read back by the model's reader)."""
    world = request.getfixturevalue("fuzz_world_bliss2" if model == "bliss2" else "fuzz_world")
    make_usable(world.server)
    world.reset(world.initial_scans)
    run(world, Call("Start", json.dumps({"title": "t", "scan_info": info}), not storable(info),
                    read_back=True))
    assert world.running == storable(info), world.log
    if world.running:
        run(world, Call("End"))
    run(world, Call("CreateGroup", ("object", (Ref("scan"),), {"title": "g", "scan_info": info})))
    assert world.log[-1].endswith("SequenceManager_BadRequest") != storable(info), world.log
    check_world(world)
    round_trip(world)
