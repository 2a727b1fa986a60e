"""Property tests: whatever blocks are emitted, reading back any range gives the same points."""

from __future__ import annotations

import itertools

import numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tango_groups.bliss1 import encoding
from tango_groups.bliss1.channel import ChannelNode
from tango_groups.bliss1.node import get_node
from tango_groups.bliss1.writer import DataWriter

_runs = itertools.count()

blocks = st.lists(st.lists(st.floats(allow_nan=False, width=64), min_size=0, max_size=5),
                  min_size=1, max_size=6)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blocks=blocks, data=st.data())
def test_any_range_reads_back_what_was_emitted(redis_client, blocks, data):
    writer = DataWriter(redis_client)
    parent = writer.ensure_containers([f"prop{next(_runs)}", "scans"])
    scan = writer.create_scan(parent, "s", {}, channels=[ChannelNode(("d",), "c", float)])
    for block in blocks:
        scan.emit({"d:c": block})
    expected = numpy.array([x for block in blocks for x in block], dtype=float)
    node = get_node(scan.db_name + ":d:c", connection=redis_client)
    assert len(node) == len(expected)
    if not len(expected):
        assert node.get(0, -1) == [] and node.get(0) is None
        return
    assert numpy.array_equal(node.get(0, -1), expected)
    start = data.draw(st.integers(0, len(expected) - 1))
    stop = data.draw(st.integers(start, len(expected) - 1))
    assert numpy.array_equal(node.get(start, stop), expected[start:stop + 1])
    assert node.get(start) == expected[start]
    assert node.get(-1) == expected[-1]


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10)


@given(values)
def test_encoding_round_trips_what_bliss_stores(value):
    assert encoding.loads(encoding.dumps(value)) == value
