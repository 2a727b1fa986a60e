"""Runs blissdata 0.3.1 (the reference reader/writer) in subprocesses against the test Redis.

Their Python is ``BLISS1_PYTHON`` (``tests/bliss_envs.py``: blissdata 0.3.1 has its own venv).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from bliss_envs import BLISS1_PYTHON

HERE = Path(__file__).parent


@pytest.fixture
def bliss_snapshot(redis_server):
    """``bliss_snapshot(session)``: what blissdata's own reader sees of a session, as JSON."""

    def snapshot(session: str) -> dict:
        out = subprocess.run(
            [BLISS1_PYTHON, str(HERE / "bliss_reader.py"), str(redis_server.port), "snapshot",
             session], capture_output=True, text=True, timeout=120, check=True)
        return json.loads(out.stdout)

    return snapshot


@pytest.fixture
def bliss_follower(redis_server):
    """``bliss_follower(session, title)``: a live blissdata walk_events, started and subscribed."""
    processes = []

    def start(session: str, title: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [BLISS1_PYTHON, str(HERE / "bliss_reader.py"), str(redis_server.port), "follow",
             session, title], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout.readline().strip() == "READY", process.stderr.read()
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()
