"""``benchmarks.targets``: a ratio target, and an absolute ceiling on the ours column (issue 16's
"p50 <= 2 ms and >= 5x"), as ``run --check`` reports them."""

from __future__ import annotations

import pytest

from benchmarks.common import Row
from benchmarks.targets import TARGETS, at_least, check


@pytest.mark.parametrize(("ours_ms", "anchor_ms", "met"), [
    (0.5, 10.0, True),    # 20x and 500 µs
    (2.0, 10.5, True),    # 5.25x and exactly 2 ms
    (2.5, 100.0, False),  # 40x but over 2 ms
    (1.5, 6.0, False),    # under 2 ms but only 4x
])
def test_ceiling_bounds_the_ours_column_as_well_as_the_ratio(ours_ms: float, anchor_ms: float,
                                                             met: bool) -> None:
    target = at_least(5, ceiling=2e-3)
    assert target.text == ">= 5x, ours <= 2 ms"
    row = Row("AddScan", ours_ms, anchor_ms, "ms", id="bliss2.tango_add")
    assert target.met(row) is met
    in_us = Row("AddScan", ours_ms * 1e3, anchor_ms * 1e3, "µs", id="bliss2.tango_add")
    assert target.met(in_us) is met  # the ceiling is in seconds, whatever the row's unit


def test_check_reports_a_row_over_its_ceiling_as_missed() -> None:
    rows = [Row("AddScan", 2.4, 30.0, "ms", id="bliss2.tango_add"),
            Row("EmitChannel 1 point", 0.4, 10.0, "ms", id="bliss2.tango_emit.1")]
    checks, missed = check(rows, {"bliss2"})
    assert checks["bliss2.tango_add"] == (">= 5x, ours <= 2 ms", "MISS")
    assert checks["bliss2.tango_emit.1"] == (">= 5x, ours <= 2 ms", "pass")
    assert checks["bliss2.tango_emit.1e3"][1] == "NOT MEASURED"
    assert {"bliss2.tango_add", "bliss2.tango_emit.1e3"} <= set(missed)
    assert "bliss2.tango_emit.1" not in missed


def test_issue_16_commands_have_both_bounds() -> None:
    for row_id in ("bliss2.tango_add", "bliss2.tango_emit.1", "bliss2.tango_emit.1e3"):
        assert TARGETS[row_id].min_ratio == 5 and TARGETS[row_id].ceiling == 2e-3
