"""A Tango client in its own process that records change events of a SequenceManager.

    python subscriber.py DEVICE_TRL UNTIL ATTRIBUTE [ATTRIBUTE...]

Subscribes to the change events of every ATTRIBUTE, prints ``READY`` once the initial event
of every subscription is in, then one JSON line per event: ``{"attr", "value"}`` (or
``{"attr", "error"}``). It stops after the event UNTIL (``attr=json value``, e.g.
``SequenceState=4``), or after 60 s.
"""

from __future__ import annotations

import json
import sys
import threading

import numpy
import tango

from tango_groups.devices.interface import event_value


def plain(value: object) -> object:
    if isinstance(value, numpy.ndarray):
        return value.tolist()
    if isinstance(value, (tango.DevState, numpy.generic)):
        return str(value) if isinstance(value, tango.DevState) else value.item()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def main() -> None:
    trl, until, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    until_attr, _, until_value = until.partition("=")
    finished = threading.Event()
    proxy = tango.DeviceProxy(trl)
    lock = threading.Condition()
    seen: set[str] = set()

    def callback(event: tango.EventData) -> None:
        name = event.attr_name.rsplit("/", 1)[-1].partition("#")[0]
        line = ({"attr": name, "error": event.errors[0].reason} if event.err
                else {"attr": name, "value": plain(event_value(event.attr_value))})
        with lock:
            print(json.dumps(line), flush=True)
            if (name.lower() in seen and name.lower() == until_attr.lower()
                    and line.get("value") == json.loads(until_value)):
                finished.set()
            seen.add(name.lower())
            lock.notify_all()

    ids = [proxy.subscribe_event(name, tango.EventType.CHANGE_EVENT, callback) for name in names]
    with lock:
        if not lock.wait_for(lambda: len(seen) == len(names), timeout=30):
            sys.exit(f"initial events missing: got {sorted(seen)}")
        print("READY", flush=True)
    if not finished.wait(60):
        sys.exit(f"no {until} event within 60 s")
    for event_id in ids:
        proxy.unsubscribe_event(event_id)


if __name__ == "__main__":
    main()
