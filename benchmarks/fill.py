"""Filling the benchmark's Redis fast: thousands of scans, hundreds of thousands of other keys.

``fill_scans`` writes scans in big pipelines through ``DataWriter.queue_node`` (the same nodes our
writer creates one by one: each scan with a ``timer`` device and one 10-point channel, PREPARED,
and optionally END with the TTLs our writer sets at END), numbered from the container's counter as
Bliss numbers them. ``fill_unrelated`` adds keys of nobody's scans with a Lua script, in chunks
short enough that a device pinging Redis meanwhile never waits long.
"""

from __future__ import annotations

import datetime
import time

import numpy

from tango_groups.bliss1 import encoding, keys
from tango_groups.bliss1.writer import STRTIME_FORMAT

from .common import BenchEnv, scan_info

_SET_KEYS = """
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do
  redis.call('SET', ARGV[1] .. i, 'x')
end
return 0
"""


def fill_scans(env: BenchEnv, parent: str, count: int, *, ended: bool = True,
               ttl: bool = False, chunk: int = 250) -> list[tuple[str, int]]:
    """``count`` scans in ``parent``, numbered after the last number allocated there (the
    counter is advanced as HINCRBY would); ``ended``: with END_SCAN and state DONE, ``ttl``: and
    the writer's TTLs (a finished scan as our writer or Bliss leaves it). Returns
    ``(db_name, number)`` of each, oldest first."""
    writer, client = env.writer, env.client
    last = int(client.hincrby(parent, keys.SCAN_COUNTER, count))
    session = parent.split(":")[0]
    stamp = time.time()
    strtime = datetime.datetime.fromtimestamp(stamp).strftime(STRTIME_FORMAT)
    desc = encoding.dumps({"reference": False, "dtype": float, "shape": (), "unit": "s"})
    data = encoding.dumps(numpy.arange(10, dtype=float))
    pickled_stamp = encoding.dumps(stamp)
    channel_info = {"shape": (), "dtype": float, "fullname": "timer:elapsed_time", "unit": "s"}
    data_ttl, parent_ttl = writer.expiration.data, writer.expiration.parent
    out = []
    pipe = client.pipeline(transaction=False)
    for nb in range(last - count + 1, last + 1):
        db = keys.child_db_name(parent, f"{nb}_loopscan")
        info = {**scan_info(session, "loopscan 10 0.1"), "scan_nb": nb,
                "state": "DONE" if ended else "STARTING"}
        writer.queue_node(pipe, db, "scan", [keys.CHILDREN, keys.PREPARED, keys.END], info=info)
        pipe.xadd(db + keys.PREPARED, {"__EVENT__": "PREPARED_SCAN",
                                       "__TIMESTAMP__": pickled_stamp, "__STRTIME__": strtime})
        device = db + ":timer"
        writer.queue_node(pipe, device, keys.DEVICE_TYPE, [keys.CHILDREN])
        channel = device + ":elapsed_time"
        writer.queue_node(pipe, channel, "channel", [keys.DATA], name="timer:elapsed_time",
                          info=channel_info)
        pipe.xadd(channel + keys.DATA, {"__EVENT__": "CHANNELDATA", "__DESC__": desc,
                                        "__NPOINTS__": 10, "__DATA__": data}, id="1-0")
        if ended:
            pipe.xadd(db + keys.END, {"__EVENT__": "END_SCAN", "__TIMESTAMP__": pickled_stamp,
                                      "__STRTIME__": strtime,
                                      "__EXCEPTION__": encoding.dumps("")})
        if ttl:
            writer.queue_expiration(pipe, [device, device + keys.CHILDREN, channel,
                                           channel + keys.INFO, channel + keys.DATA], data_ttl)
            own = [db + s for s in ("", keys.INFO, keys.CHILDREN, keys.END, keys.PREPARED)]
            writer.queue_expiration(pipe, own, parent_ttl)
        out.append((db, nb))
        if nb % chunk == 0:
            pipe.execute()
    if ttl:
        above = [a + s for a in [parent, *keys.ancestors(parent)]
                 for s in ("", keys.INFO, keys.CHILDREN)]
        writer.queue_expiration(pipe, above, parent_ttl)
    pipe.execute()
    return out


def fill_unrelated(env: BenchEnv, count: int, prefix: str = "unrelated:",
                   chunk: int = 20_000) -> float:
    """``count`` small string keys ``{prefix}0`` ... that no scan knows of; returns seconds."""
    script = env.client.register_script(_SET_KEYS)
    started = time.perf_counter()
    for first in range(0, count, chunk):
        script(args=[prefix, first, min(first + chunk, count) - 1])
    return time.perf_counter() - started
