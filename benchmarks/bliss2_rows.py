"""Section 11 of the table: Bliss 2 sequences, ``tango_groups.bliss2.SequenceScan`` and the
``SequenceManager`` device in ``DataFormat`` bliss2, against blissdata 2.4.5 used directly
(``benchmarks/bliss2_side.py``), measured in the same run.

Both sides run on one ``DataStore`` of a private Valkey with RedisJSON and RediSearch
(``RedisServer(modules=True)``, set up by ``tango_groups.bliss2.data_store``; started and stopped
by this group, apart from the plain Redis of the other groups). Each side writes its sequences in
a session of its own; within a repeat one side measures all its calls, then the other, the side
going first alternating from repeat to repeat. Rows (ours | anchor):

* create: ``SequenceScan(store, session=, number=, title=, channels=[one float64 channel])`` |
  ``create_scan`` (``is_scan_sequence``), the ``SUBSCANS`` stream and a numeric stream,
  ``prepare``, ``start``; end: ``SequenceScan.end()`` | ``stop``, end reason, ``close``;
* append a reference: ``add_scan(key)`` | ``ScanStream`` send + join, p50;
* emit a float64 block of 1e3 / 1e5 points: ``emit`` | ``send`` + ``join``;
* through Tango (issue 16's "2 ms commands"), p50: a client's ``AddScan(key)`` | the anchor's
  append, and ``EmitChannel`` of one point and of a block of 1e3 | the anchor's ``send`` +
  ``join`` of the same points, on one ``SequenceManager`` with ``DataFormat`` bliss2 (a device
  server started as section 9 starts it, ``tango_devices.start_device``).

Ours sends blissdata's own entries synchronously (``tango_groups.bliss2.streams``): a call
returns once its data is in Redis. The anchor's ``send`` goes through blissdata's sink, which
sends once no new command came for 10 ms, so ``join`` waits about that long: the rows written
as blissdata's append + flush measure that wait against ours. ``GroupSkipped`` where blissdata 2
is not installed or the modules server cannot start here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import numpy
import redis
import tango

from tango_groups.data.channel import ChannelSpec
from tango_groups.data.connection import connect
from tango_groups.runtime.redis_server import RedisServer

from .common import BenchEnv, GroupSkipped, Row, median_of_medians, percentile, perf, timed
from .tango_devices import CHANNEL as DEVICE_CHANNEL
from .tango_devices import Sequences, start_device

__all__ = ["bliss2_rows"]

SECTION = ("11. Bliss 2 sequence (tango_groups.bliss2.SequenceScan, the device in DataFormat "
           "bliss2) vs blissdata 2.4.5 used directly (same run, same DataStore)")
OURS, ANCHOR, SUBSCANS_SESSION = "bench_b2_ours", "bench_b2_anchor", "bench_b2_subscans"
TANGO_SESSION = "bench_b2_tango"
CHANNEL = "c"
POOL = 10  # finished scans the references point to, in turn
SIZES = (1000, 100_000)

# by profile name: repeats, sequences created per repeat, appends per repeat, emits by size
CALLS: dict[str, dict[str, Any]] = {
    "quick": {"repeats": 3, "create": 6, "append": 30, "emit": {1000: 20, 100_000: 5},
              "tango_emit": 50},
    "default": {"repeats": 7, "create": 15, "append": 100, "emit": {1000: 60, 100_000: 20},
                "tango_emit": 150},
}
TANGO_SIZES = (1, 1000)  # EmitChannel through Tango: one point, a typical block
SINK_NOTE = ("ours writes synchronously (its XADD goes out in the call's own request, which "
             "returns once the data is in Redis); only the anchor waits for blissdata's sink "
             "(DualStageThreadSink), which sends what it was given once no new command came "
             "for 10 ms: that wait is most of the anchor column")
SINK_AGAIN = "the anchor waits for blissdata's sink as in the append row, ours does not"

T = TypeVar("T")


@dataclasses.dataclass
class _Bench:
    env: BenchEnv
    url: str                   # of the modules server
    store: Any                 # blissdata.redis_engine.store.DataStore
    client: redis.Redis        # the same server, for the clean-up between repeats
    calls: dict[str, Any]
    numbers: itertools.count = dataclasses.field(default_factory=lambda: itertools.count(1))

    def ours(self) -> Any:
        from tango_groups.bliss2 import SequenceScan

        return SequenceScan(self.store, session=OURS, number=next(self.numbers),
                            title="sequence_of_scans",
                            channels=[ChannelSpec(CHANNEL, "float64")])

    def anchor(self) -> Any:
        from tango_groups.bliss2 import custom_stream_name

        from .bliss2_side import AnchorSequence

        return AnchorSequence(self.store, ANCHOR, next(self.numbers), "sequence_of_scans",
                              custom_stream_name(CHANNEL))

    def both(self, ours: Callable[[], T], anchor: Callable[[], T]) -> tuple[list[T], list[T]]:
        """``repeats`` results of each side, the side going first alternating."""
        results: tuple[list[T], list[T]] = ([], [])
        for repeat in range(self.calls["repeats"]):
            sides = ((0, ours), (1, anchor)) if repeat % 2 == 0 else ((1, anchor), (0, ours))
            for side, measure in sides:
                results[side].append(measure())
        return results

    def anchor_emits(self, data: numpy.ndarray, n: int) -> list[float]:
        """Seconds of ``n`` sends + joins of ``data`` on a fresh anchor sequence (after one
        untimed), its streams dropped once it ended."""
        sequence = self.anchor()
        sequence.emit(data)  # warm-up
        samples = timed(partial(sequence.emit, data), n)
        sequence.end()
        self.drop(sequence.stream_keys)
        return samples

    def drop(self, keys: list[str]) -> None:
        """Delete the data streams of an ended sequence (Redis stays small between repeats)."""
        self.client.delete(*keys)


def bliss2_rows(env: BenchEnv) -> list[Row]:
    try:
        from tango_groups.bliss2 import data_store
    except ImportError as error:
        raise GroupSkipped(f"blissdata 2 is not installed ({error}): the 'bliss2' extra, "
                           "pip install -e '.[bliss2]'") from None
    server = RedisServer(modules=True)
    try:
        server.start()
    except RuntimeError as error:  # ModulesUnavailable, or the server refused a module
        raise GroupSkipped(f"no Redis with RedisJSON and RediSearch here: {error}") from None
    client = None
    try:
        client = connect(server.url)
        bench = _Bench(env, server.url, data_store(server.url), client, CALLS[env.profile.name])
        info = client.info("server")
        env.log(f"  Valkey {info.get('valkey_version', info['redis_version'])} with "
                "RedisJSON and RediSearch on " + server.url)
        return [row for part in PARTS for row in part(bench)]
    finally:
        if client is not None:
            client.close()
        server.stop()


# -- create and end a sequence --------------------------------------------------------------
def _create_and_end(b: _Bench) -> list[Row]:
    def measure(new: Callable[[], Any]) -> tuple[list[float], list[float]]:
        create, end = [], []
        for _ in range(b.calls["create"]):
            t0 = perf()
            sequence = new()
            t1 = perf()
            sequence.end()
            create.append(t1 - t0)
            end.append(perf() - t1)
        return create, end

    b.ours().end()  # warm-up: imports, scripts, the first documents
    b.anchor().end()
    ours, anchor = b.both(partial(measure, b.ours), partial(measure, b.anchor))
    s, ms = SECTION, 1e3
    return [
        Row("create + streams + prepare + start", median_of_medians([o[0] for o in ours]) * ms,
            median_of_medians([a[0] for a in anchor]) * ms, "ms", section=s, id="bliss2.create",
            note="ours SequenceScan(store, session=, number=, title=, channels=[1 float64]); "
                 "anchor create_scan (is_scan_sequence), ScanStream SUBSCANS + 1 numeric "
                 "stream, prepare, start: the same documents and streams"),
        Row("end (stop, end reason, close)", median_of_medians([o[1] for o in ours]) * ms,
            median_of_medians([a[1] for a in anchor]) * ms, "ms", section=s, id="bliss2.end",
            note="ours SequenceScan.end(); anchor scan.stop(), info end_reason/end_time, "
                 "scan.close()"),
    ]


# -- append one sub-scan reference ------------------------------------------------------------
def _append(b: _Bench) -> list[Row]:
    from .bliss2_side import finished_scan

    subscans = [(finished_scan(b.store, SUBSCANS_SESSION, n), n) for n in range(1, POOL + 1)]
    n = b.calls["append"]

    def ours() -> list[float]:
        sequence = b.ours()

        def add(key: str) -> None:
            sequence.add_scan(key)

        add(subscans[0][0])  # warm-up
        samples = _timed_each(lambda i: add(subscans[i % POOL][0]), n)
        sequence.end()
        return samples

    def anchor() -> list[float]:
        sequence = b.anchor()
        sequence.add_scan(*subscans[0])  # warm-up
        samples = _timed_each(lambda i: sequence.add_scan(*subscans[i % POOL]), n)
        sequence.end()
        return samples

    o, a = b.both(ours, anchor)
    return [Row("append a sub-scan reference, p50", percentile(o, 50) * 1e3,
                percentile(a, 50) * 1e3, "ms", section=SECTION, id="bliss2.append",
                note="ours SequenceScan.add_scan(key) (synchronous): also loads the referenced "
                     "scan (it must exist; its number is read from it); anchor ScanStream "
                     "send({key, scan_number}) + join(); " + SINK_NOTE)]


def _timed_each(call: Callable[[int], object], n: int) -> list[float]:
    """Seconds of ``call(0)`` ... ``call(n - 1)``."""
    samples = []
    for i in range(n):
        t0 = perf()
        call(i)
        samples.append(perf() - t0)
    return samples


# -- emit float64 blocks into a custom channel ------------------------------------------------
def _emit(b: _Bench) -> list[Row]:
    rows = []
    for size in SIZES:
        data = numpy.random.default_rng(0).random(size)
        n = b.calls["emit"][size]

        def ours(data: numpy.ndarray = data, n: int = n) -> list[float]:
            sequence = b.ours()

            def emit() -> None:
                sequence.emit(CHANNEL, data)

            emit()  # warm-up
            samples = timed(emit, n)
            sequence.end()
            b.drop([sequence.subscans.key, *(c.key for c in sequence.channels.values())])
            return samples

        o, a = b.both(ours, partial(b.anchor_emits, data, n))
        label = f"{size:.0e}".replace("e+0", "e")
        om, am = median_of_medians(o), median_of_medians(a)
        rows.append(Row(
            f"emit float64[{label}] into a custom channel", om * 1e3, am * 1e3, "ms",
            section=SECTION, id=f"bliss2.emit.{label}",
            note=f"ours emit (synchronous), anchor stream send + join() of the same array "
                 f"(ours {size * 8 / om / 1e6:,.0f} MB/s, anchor {size * 8 / am / 1e6:,.0f} "
                 "MB/s); " + SINK_AGAIN))
    return rows


# -- commands through Tango, DataFormat bliss2 (issue 16) ----------------------------------------
def _tango(b: _Bench) -> list[Row]:
    """A SequenceManager with ``DataFormat`` bliss2 on the modules server, its client's
    ``AddScan`` and ``EmitChannel`` against blissdata's own append + flush (a fresh sequence
    per repeat: the device refuses a scan added twice)."""
    from tango_groups.devices.sequence_manager import SequenceManager

    from .bliss2_side import finished_scan

    pool = [(finished_scan(b.store, TANGO_SESSION, number), number)
            for number in range(1, b.calls["append"] + 2)]
    with contextlib.ExitStack() as stack:
        proxy, _ = start_device(stack, SequenceManager, {
            "RedisURL": b.url, "Session": TANGO_SESSION, "DataFormat": "bliss2"})
        sequences = Sequences(proxy)  # Start with the channel 'sum', End
        stack.callback(sequences.end)  # runs before the server stops (LIFO)
        return ([_tango_add(b, proxy, sequences, pool)]
                + [_tango_emit(b, proxy, sequences, size) for size in TANGO_SIZES])


def _tango_add(b: _Bench, proxy: tango.DeviceProxy, sequences: Sequences,
               pool: list[tuple[str, int]]) -> Row:
    n = b.calls["append"]

    def ours() -> list[float]:
        sequences.start()
        proxy.AddScan(pool[0][0])  # warm-up
        samples = _timed_each(lambda i: proxy.AddScan(pool[i + 1][0]), n)
        sequences.end()
        return samples

    def anchor() -> list[float]:
        sequence = b.anchor()
        sequence.add_scan(*pool[0])  # warm-up
        samples = _timed_each(lambda i: sequence.add_scan(*pool[i + 1]), n)
        sequence.end()
        return samples

    o, a = b.both(ours, anchor)
    return Row("AddScan through Tango (DataFormat bliss2) vs blissdata's append + flush, p50",
               percentile(o, 50) * 1e3, percentile(a, 50) * 1e3, "ms", section=SECTION,
               id="bliss2.tango_add",
               note="ours: a Tango client's AddScan(key) of a finished scan on a SequenceManager "
                    "(checks, loads the scan, writes the reference, pushes the events); anchor: "
                    "ScanStream send({key, scan_number}) + join() in process; " + SINK_AGAIN
                    + ". The 1.x device's AddScan is section 9's 'command round trip: AddScan "
                    "of a prepared scan' (run --only tango bliss2 measures both in one run)")


def _tango_emit(b: _Bench, proxy: tango.DeviceProxy, sequences: Sequences, size: int) -> Row:
    data = numpy.random.default_rng(0).random(size)
    n = b.calls["tango_emit"]
    emit = partial(proxy.command_inout, "EmitChannel", (data, [DEVICE_CHANNEL]))

    def ours() -> list[float]:
        sequences.start()
        emit()  # warm-up
        samples = timed(emit, n)
        sequences.end()
        return samples

    o, a = b.both(ours, partial(b.anchor_emits, data, n))
    label = "1 point" if size == 1 else f"{size:.0e}".replace("e+0", "e") + " points"
    return Row(f"EmitChannel {label} through Tango (DataFormat bliss2) vs blissdata's send + "
               "join, p50", percentile(o, 50) * 1e3, percentile(a, 50) * 1e3, "ms",
               section=SECTION, id=f"bliss2.tango_emit.{label.split()[0]}",
               note=f"ours: a Tango client's EmitChannel of {label} (float64) into the "
                    "sequence's channel 'sum' (one XADD in the request, then the channel's "
                    "change event); anchor: send + join() of the same array on a float64 "
                    f"stream in process; {n} calls per repeat, a fresh sequence per repeat; "
                    "the 1.x device's EmitChannel is in section 9; " + SINK_AGAIN)


# The parts of the group, in table order.
PARTS: tuple[Callable[[_Bench], list[Row]], ...] = (_create_and_end, _append, _emit, _tango)
