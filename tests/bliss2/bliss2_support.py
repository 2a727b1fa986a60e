"""Helpers of the Bliss 2 tests: scans written by blissdata 2.x itself, blissdata's own reader.

``bliss2_reader.py`` runs blissdata 2.4.5's reader in a subprocess (live: ``Follower``; after the
fact: ``snapshot``); ``write_scan`` (``tests/bliss2_data``, shared with the fault suite) writes a
scan as Bliss 2 would. Imported by test modules after their ``pytest.importorskip("blissdata...")``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bliss2_data import write_scan

__all__ = ["Follower", "snapshot", "write_scan"]

HERE = Path(__file__).parent
READER_TIMEOUT = 120  # seconds a reader subprocess may take


def snapshot(url: str, key: str) -> dict:
    """What blissdata 2.4.5's reader loads of scan ``key`` (``bliss2_reader.py snapshot``)."""
    out = subprocess.run([sys.executable, str(HERE / "bliss2_reader.py"), url, "snapshot", key],
                         capture_output=True, text=True, timeout=READER_TIMEOUT, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class Follower:
    """A live ``bliss2_reader.py follow`` of the next sequence of a session."""

    def __init__(self, url: str, session: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "bliss2_reader.py"), url, "follow", session],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.next()["event"] == "READY"

    def next(self) -> dict:
        """The next event (pytest-timeout bounds the wait; the reader gives up after 60 s)."""
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(READER_TIMEOUT)
            raise AssertionError(f"the reader ended: {self.process.stderr.read()}")
        return json.loads(line)

    def until(self, event: str) -> list[dict]:
        """Events up to and including the first one of kind ``event``."""
        events = [self.next()]
        while events[-1]["event"] != event:
            events.append(self.next())
        return events

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


