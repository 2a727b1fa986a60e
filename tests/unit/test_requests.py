"""Requests of the SequenceManager are checked before anything is written: any text gives a typed
request or a ``ManagerError`` with a stable reason, never another exception."""

from __future__ import annotations

import io
import json

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tango_groups.service.requests import (
    MAX_NUMBER,
    ManagerError,
    decode_npy,
    parse_group_request,
    parse_scan_reference,
    parse_start_request,
)

REASONS = {"BadRequest", "BadChannel", "DuplicateScan", "BadData"}


def reason_of(call) -> str | None:
    try:
        call()
    except ManagerError as error:
        assert error.reason in REASONS and error.message
        return error.reason
    return None


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                           lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                           max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.text() | json_values.map(json.dumps))
def test_any_text_is_a_request_or_a_stable_refusal(text: str) -> None:
    for parse in (parse_start_request, parse_scan_reference, parse_group_request):
        reason_of(lambda p=parse: p(text))


@pytest.mark.parametrize("text, expected", [("12", 12), (" 7 ", 7), (str(MAX_NUMBER), MAX_NUMBER),
                                            ("s:tmp:scans:1_loopscan", "s:tmp:scans:1_loopscan")])
def test_scan_references(text: str, expected: int | str) -> None:
    assert parse_scan_reference(text) == expected


@pytest.mark.parametrize("text", ["0", str(MAX_NUMBER + 1), "9" * 30, "²", "١٢", "-1", "1.5",
                                  "", "loopscan", "a:", ":b", "a::b"])
def test_references_that_name_no_scan(text: str) -> None:
    assert reason_of(lambda: parse_scan_reference(text)) == "BadRequest"


@pytest.mark.parametrize("channel", [{"name": "x", "dtype": "float16"},
                                     {"name": "x", "dtype": "longdouble"},
                                     {"name": "x", "dtype": "complex64"},
                                     {"name": "x", "shape": [100_000_000_000]},
                                     {"name": "x", "shape": [100_000, 100_000]},
                                     {"name": "x", "shape": [0]}, {"name": "x", "shape": [1, 2, 3]},
                                     {"name": "x", "shape": [True]}, {"name": "1x"}])
def test_channels_tango_cannot_declare(channel: dict) -> None:
    request = json.dumps({"channels": [channel]})
    assert reason_of(lambda: parse_start_request(request)) == "BadChannel"


def test_nesting_is_bounded_whatever_the_depth() -> None:
    for depth in (33, 10_000, 1_000_000):
        text = '{"scan_info": {"a": %s}}' % ("[" * depth + "]" * depth)
        assert reason_of(lambda t=text: parse_start_request(t)) == "BadRequest"
    assert parse_start_request('{"scan_info": {"a": %s}}' % ("[" * 30 + "]" * 30)).scan_info


def test_group_requests_name_each_scan_once() -> None:
    assert parse_group_request("1, 2 s:a:3_x") == ([1, 2, "s:a:3_x"], None, {})
    assert reason_of(lambda: parse_group_request("[1, 1]")) == "DuplicateScan"
    assert reason_of(lambda: parse_group_request("[1, true]")) == "BadRequest"


@pytest.mark.parametrize("payload", [b"", b"\x93NUMPY", b"not npy"])
def test_npy_that_is_not_npy(payload: bytes) -> None:
    assert reason_of(lambda: decode_npy(payload)) == "BadData"


def test_pickled_npy_is_refused() -> None:
    buffer = io.BytesIO()
    numpy.save(buffer, numpy.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert reason_of(lambda: decode_npy(buffer.getvalue())) == "BadData"


@pytest.mark.parametrize("title", ["a\u0000b", "\u0100", "\U000ce51b", "\ud800", "a\nb",
                                   "\x1b[31m"])
def test_titles_tango_strings_cannot_carry(title: str) -> None:
    for request in (json.dumps({"title": title}), title,
                    json.dumps({"scans": [1], "title": title})):
        parse = parse_group_request if "scans" in request else parse_start_request
        assert reason_of(lambda r=request, p=parse: p(r)) == "BadRequest"
    assert parse_start_request(json.dumps({"title": "Ångström scan"})).title == "Ångström scan"


# text Redis cannot store: a lone surrogate (JSON's "\udc80" escape) anywhere in a request
SURROGATE = "\udc80"


@pytest.mark.parametrize("request_text", [
    json.dumps({"scan_info": {SURROGATE: 1}}),
    json.dumps({"scan_info": {"a": [1, {"b": "x" + SURROGATE}]}}),
    json.dumps({"scan_info": {"a": {SURROGATE + "k": None}}}),
    json.dumps({"channels": [{"name": "x", "unit": "m" + SURROGATE}]}),
])
def test_start_refuses_text_redis_cannot_store(request_text: str) -> None:
    try:
        parse_start_request(request_text)
    except ManagerError as error:
        assert error.reason in ("BadRequest", "BadChannel"), error.reason
        assert "lone surrogate" in error.message and "send valid text" in error.message
    else:
        raise AssertionError(f"{request_text} was accepted")


def test_group_and_reference_refuse_text_redis_cannot_store() -> None:
    for request in (json.dumps({"scans": [1], "scan_info": {SURROGATE: 1}}),
                    json.dumps(["s:tmp:" + SURROGATE])):
        assert reason_of(lambda r=request: parse_group_request(r)) == "BadRequest"
    assert reason_of(lambda: parse_scan_reference("s:" + SURROGATE)) == "BadRequest"


@pytest.mark.parametrize("text", ["a\x00b", "\u4e2d\u6587", "\U0001f600", "é", ""])
def test_scan_info_keeps_text_redis_can_store(text: str) -> None:
    scan_info = {text: text, "list": [text, {text: [text]}]}
    assert parse_start_request(json.dumps({"scan_info": scan_info})).scan_info == scan_info
    assert parse_group_request(json.dumps({"scans": [1], "scan_info": scan_info}))[2] == scan_info


json_text = st.text(st.characters(codec=None, categories=None), max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(json_text, st.recursive(
    json_text | st.integers(), lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(json_text, inner, max_size=3), max_leaves=6), max_size=4))
def test_scan_info_is_kept_exactly_or_refused_for_its_text(scan_info: dict) -> None:
    """Any text, surrogates included: kept as sent, or refused (BadRequest) when some text in
    it does not encode as UTF-8."""
    storable = True
    try:
        json.dumps(scan_info, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        storable = False
    request = json.dumps({"scan_info": scan_info})
    if storable:
        assert parse_start_request(request).scan_info == scan_info
    else:
        assert reason_of(lambda: parse_start_request(request)) == "BadRequest"


@pytest.mark.parametrize("path", ["data.h5", "scans/data.h5", "/data/id00/data.txt", "/data/x",
                                  7, ["/a.h5"], "/a\u0000b.h5", "/a" + SURROGATE + ".h5"])
def test_start_refuses_a_path_that_is_no_absolute_hdf5_file(path: object) -> None:
    request = json.dumps({"title": "t", "path": path})
    assert reason_of(lambda: parse_start_request(request)) == "BadRequest"


def test_start_takes_an_absolute_hdf5_file_or_no_file() -> None:
    assert parse_start_request('{"path": "/data/id00/../id01/seq.h5"}').path == "/data/id01/seq.h5"
    assert parse_start_request('{"path": "/data/seq.nxs"}').path == "/data/seq.nxs"
    assert parse_start_request('{"path": ""}').path == ""  # saves no file
    assert parse_start_request('{"title": "t"}').path is None  # derived from the properties
