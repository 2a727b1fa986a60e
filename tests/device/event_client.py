"""A Tango client in its own process, shaped like the ones beamlines run: it holds a redis-py
client of its own (an online-analysis process, an itango shell that uses ``tango_groups``) and
follows the SequenceManager's change events; with ``drive`` it also runs sequences through the
device from the same process.

    python event_client.py DEVICE_TRL REDIS_URL listen|drive SEQUENCES ATTRIBUTE [ATTRIBUTE...]

It subscribes to the change events of every ATTRIBUTE, prints ``READY``, then one JSON line per
event (``{"attr", "value"}`` or ``{"attr", "error"}``). ``listen`` stops when its standard input
closes; ``drive`` runs SEQUENCES sequences (points on the channels of ``CHANNELS``, a pending
number in every other one, which is aborted) and stops once it has seen them all end (it follows
``SequenceState`` for that). Either exits 0; a client that cppTango's event consumer makes read
uninitialised memory dies with SIGSEGV or SIGBUS instead.
"""

from __future__ import annotations

import json
import sys
import threading

import numpy
import redis
import tango

from tango_groups.devices.interface import event_value
from tango_groups.scanning.scan import ScanState

CHANNELS = ["sum", "counts", "spectrum", "roi", "flag"]  # as tests/device/conftest.py declares
PENDING = 900_000  # a number no scan of the test takes: it stays pending until Abort
ENDED = (ScanState.DONE, ScanState.USER_ABORTED)


def drive(proxy: tango.DeviceProxy, sequences: int) -> None:
    for index in range(sequences):
        proxy.Start(json.dumps({"title": f"client {index}", "channels": CHANNELS}))
        proxy.EmitChannel(([1.0, 2.0], ["sum"]))
        proxy.EmitChannel(([index, index + 1], ["counts"]))
        proxy.EmitChannel((numpy.arange(8.0), ["spectrum"]))
        proxy.EmitChannel(([1, 2, 3], ["roi"]))
        proxy.EmitChannel(([1, 0], ["flag"]))
        if index % 2:
            proxy.AddScan(str(PENDING))
            proxy.Abort()
        else:
            proxy.End()


def main() -> None:
    trl, redis_url, role, sequences = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = redis.Redis.from_url(redis_url)  # the pool a client of ours holds, connected
    client.ping()
    proxy = tango.DeviceProxy(trl)
    ended = threading.Semaphore(0)
    first: set[str] = set()  # attributes whose subscription's first event came
    lock = threading.Lock()

    def callback(event: tango.EventData) -> None:
        name = event.attr_name.rsplit("/", 1)[-1].partition("#")[0].lower()
        if event.err:
            line = {"attr": name, "error": event.errors[0].reason}
        else:
            value = event_value(event.attr_value)
            line = {"attr": name, "value": value.tolist() if isinstance(value, numpy.ndarray)
                    else int(value)}
            if name == "sequencestate" and name in first and int(value) in ENDED:
                ended.release()
        with lock:
            first.add(name)
            print(json.dumps(line), flush=True)

    for name in sys.argv[5:]:
        proxy.subscribe_event(name, tango.EventType.CHANGE_EVENT, callback)
    print("READY", flush=True)
    if role == "drive":
        drive(proxy, sequences)
        for _ in range(sequences):
            if not ended.acquire(timeout=60):
                sys.exit("the sequences' ends did not all come within 60 s")
    else:
        sys.stdin.read()
    client.close()


if __name__ == "__main__":
    main()
