"""The benchmarks' ``bliss2`` row group (``benchmarks/bliss2_rows.py``) through ``benchmarks.run``.

No timing is asserted (shared machines are noisy): the group runs in ``--quick``, gives each of
its targets a row measured on both sides, and where the modules server cannot start it is
skipped with the reason printed, without failing the run or its ``--check``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from benchmarks import bliss2_rows, run
from benchmarks.targets import TARGETS
from tango_groups.runtime.redis_server import RedisServer

pytest.importorskip("blissdata.redis_engine", reason="the bliss2 extra is not installed")


def test_quick_run_measures_every_bliss2_target_on_both_sides(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows_json = tmp_path / "rows.json"
    code = run.main(["--quick", "--only", "bliss2", "--json", str(rows_json)])
    out = capsys.readouterr().out
    if "row group bliss2 skipped" in out:
        pytest.skip(out.split("row group bliss2 skipped: ")[1])
    assert code == 0, out
    rows = json.loads(rows_json.read_text())
    assert {row["id"] for row in rows} == {i for i in TARGETS if i.startswith("bliss2.")}
    for row in rows:
        assert row["ours"] > 0 and row["anchor"] > 0, row
        assert row["section"].startswith("11. Bliss 2")
    assert "11. Bliss 2 sequence" in out


def test_group_is_skipped_with_its_reason_where_the_server_cannot_start(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # a real valkey-server that cannot bind (an address of TEST-NET-1, not this machine's)
    monkeypatch.setattr(bliss2_rows, "RedisServer",
                        functools.partial(RedisServer, host="192.0.2.1", port=6399))
    code = run.main(["--quick", "--check", "--only", "bliss2"])
    captured = capsys.readouterr()
    assert code == 0, captured.out
    assert "targets: 0 of 0 met" in captured.out
    assert ("row group bliss2 skipped: no Redis with RedisJSON and RediSearch here"
            in captured.out)
    assert "[bliss2] skipped: no Redis with RedisJSON and RediSearch here" in captured.err
