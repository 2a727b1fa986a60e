"""The anchor of section 11: blissdata 2.4.5 used directly, the way Bliss 2's sequence does it.

A Bliss 2 ``ScanSequence`` is a scan whose ``scan_info`` says ``is_scan_sequence`` and whose
``GroupingMaster`` emits one ``{"key", "scan_number"}`` entry per sub-scan into the JSON stream
``GroupingMaster:SUBSCANS`` (``ScanStream.make_definition``); its custom channels are numeric
streams. Bliss creates every stream, then ``prepare()`` and ``start()``; points go out with
``stream.send`` (blissdata's sink sends them in the background); at the end ``stop()`` seals the
streams, ``info`` gets the end reason and ``close()`` publishes it.

Unlike ``bliss_side.py`` (blissdata 0.3.1, which needs gevent), this runs in the benchmark's own
process, on the same ``DataStore`` as ``tango_groups.bliss2.SequenceScan``. Only this side sends
through blissdata's (thread) sink, ``DualStageThreadSink``: it sends what it was given once no
new command came for 10 ms, so ``add_scan`` and ``emit`` (send + join) wait about that long;
ours sends the same entries synchronously (``tango_groups.bliss2.streams``).
Imports blissdata 2: import this module only where the ``bliss2`` extra is installed.
"""

from __future__ import annotations

import datetime
from typing import Any

from blissdata.redis_engine.scan import Scan
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream
from blissdata.streams.scan_sequence import ScanStream

__all__ = ["AnchorSequence", "finished_scan"]

SUBSCANS = "GroupingMaster:SUBSCANS"  # the name Bliss 2 gives it (SubscanAcquisitionChannel)


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat()


class AnchorSequence:
    """A sequence scan, STARTED, with its SUBSCANS stream and one float64 stream ``channel``."""

    def __init__(self, store: DataStore, session: str, number: int, title: str,
                 channel: str) -> None:
        identity = {"name": "sequence_of_scans", "number": number, "data_policy": "no_policy",
                    "session": session, "path": None}
        info = {"title": title, "type": "sequence_of_scans", "name": "sequence_of_scans",
                "scan_nb": number, "session_name": session, "is_scan_sequence": True,
                "start_time": _now()}
        self.scan: Scan = store.create_scan(identity, info)
        self.subscans = self.scan.create_stream(ScanStream.make_definition(SUBSCANS))
        self.channel = self.scan.create_stream(Stream.make_definition(channel, "float64", ()))
        self.scan.prepare()
        self.scan.start()

    def add_scan(self, key: str, scan_number: int) -> None:
        """One sub-scan reference, in Redis on return."""
        self.subscans.send({"key": key, "scan_number": scan_number})
        self.subscans.join()

    def emit(self, data: Any) -> None:
        """A block of points of the float64 stream, in Redis on return."""
        self.channel.send(data)
        self.channel.join()

    def end(self) -> None:
        """STOPPED (streams sealed), then CLOSED with the end reason in ``info``."""
        self.scan.stop()
        self.scan.info = {**self.scan.info, "end_reason": "SUCCESS", "end_time": _now()}
        self.scan.close()

    @property
    def stream_keys(self) -> list[str]:
        return [self.subscans.key, self.channel.key]


def finished_scan(store: DataStore, session: str, number: int) -> str:
    """A finished scan without data (created, prepared, started, stopped, closed): its key."""
    scan = store.create_scan({"name": "loopscan", "number": number, "data_policy": "no_policy",
                              "session": session}, info={"title": f"loopscan {number}"})
    scan.prepare()
    scan.start()
    scan.stop()
    scan.close()
    return scan.key
