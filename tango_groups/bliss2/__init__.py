"""Sequences in the Bliss 2 data model, in blissdata 2.x's own model (``[bliss2]`` extra).

The Bliss 1.x side (``tango_groups.bliss1``) writes data nodes byte for byte; this side writes
through blissdata 2.4.5 (LGPL, the field's own library, pinned): its models, encoders and state
transitions, with one exception, the stream entries, which ``streams`` sends itself in the
caller's request (blissdata's writers send them from a thread that batches for 10 ms and dies
with its connection): the same entries, byte for byte (tests/bliss2/test_streams.py). Read in
blissdata 2.4.5's source and checked by tests/bliss2:

Store and scans (``blissdata.redis_engine``)
    ``DataStore(url)`` needs a Redis >= 7.1 (or Valkey) with RedisJSON and RediSearch and a db
    set up once by ``DataStore(url, init_db=True)`` (only on an empty db: index, Lua
    ``seal_stream`` function, ``_PROTOCOL_VERSION_ = 1``); ``data_store()`` does both.
    ``store.create_scan(identity, info)`` writes the JSON document ``esrf:scan:<ULID>`` (``id``:
    the ``ESRFIdentityModel`` fields ``name``, ``number``, ``data_policy``, ``session``,
    ``proposal``, ``collection``, ``dataset``, ``path``; ``info``; ``state_stream``;
    ``data_streams``) and announces the key on the capped stream ``_SCAN_HISTORY_`` (MAXLEN ~2048).
    States CREATED -> PREPARED -> STARTED -> STOPPED -> CLOSED, written to the scan's state stream;
    ``info`` may change only on the transitions to PREPARED and to CLOSED (an assertion otherwise).
    ``scan.create_stream(definition)`` checks no state, but stream models reach Redis with the JSON
    document at the next transition only: created after ``prepare()``, a stream stays unseen until
    STOPPED, so all are created before it. ``stop()`` (from STARTED only) and ``close()`` (from any
    state) seal the writer's streams. A reader: ``store.load_scan(key)``, ``scan.update()``
    (blocks until the next state), ``scan.streams[name]`` (from PREPARED on), ``stream.cursor()``.
Streams (``blissdata.streams``)
    ``Stream.make_definition(name, dtype, shape=None, info={})`` (``blissdata.streams.default``) is
    a numeric stream (``info`` gets ``dtype`` and ``shape``), or JSON with ``dtype="json"``;
    ``stream.send(point or batch)`` queues to a sink thread (a greenlet when gevent patched the
    process), ``join()`` waits for Redis, ``seal()`` ends the stream. Entries are ``esrf:stream:
    <ULID>`` Redis streams: ``XADD <index>-1 payload <bytes> [len <n>]``, ``index`` the position
    of the batch's first point, and a seal entry (id 2**64-1, field ``id``: the length); a
    reader's ``stream[:]`` or cursor gets numpy arrays.
Sequences
    A sequence is a scan with ``info["is_scan_sequence"] = True`` and a stream made with
    ``blissdata.streams.scan_sequence.ScanStream.make_definition(name)`` (JSON, ``info`` format
    ``subscan``, plugin ``scan_sequence``), named ``GroupingMaster:SUBSCANS`` in Bliss 2 (its
    ``SubscanAcquisitionChannel`` fullname), one entry ``{"key": <scan key>, "scan_number": n}``
    per sub-scan. blissdata readers wrap it with the ``scan_sequence`` plugin (entry point group
    ``blissdata``): ``stream[i]`` is ``store.load_scan(entry["key"])``. Bliss 2 also sets
    ``info["group"] = <sequence key>`` on the children it runs itself.
Finding scans
    ``store.search_existing_scans(session=..., number=...)`` -> ``(timetag, [keys])``, a
    RediSearch query on the ``id`` fields (numbers as ranges, text as tags, ``*`` wildcards) in one
    transaction with the last ``_SCAN_HISTORY_`` ID; ``store.get_next_scan(since=timetag,
    timeout=s)`` -> ``(timetag, key)`` follows new scans from there (``NoScanAvailable`` on
    timeout); ``store.get_last_scan()``; ``store.get_scans_state(keys)``.
redis-py
    blissdata 2.4.5 requires ``redis>=4.6`` but its dependency redis-om 1.2 wants ``>=6.3,!=8.0.0``;
    measured here: 6.3, 6.4, 7.0, 7.2 and 7.4 pass a full sequence with search; 8.0.1 and 8.1 fail
    in ``search_existing_scans`` (``KeyError: 0``). The extra pins ``redis>=6.3,<8``.
"""

from __future__ import annotations

from .sequence import SUBSCANS, SequenceScan, custom_stream_name
from .store import (
    SessionCounter,
    close_left_open,
    data_store,
    ensure_set_up,
    find_scans,
    last_number,
    next_number,
    scan_of_number,
    scan_progress,
    store_client,
    stream_tails,
)

__all__ = ["SUBSCANS", "SequenceScan", "SessionCounter", "close_left_open",
           "custom_stream_name", "data_store", "ensure_set_up", "find_scans", "last_number",
           "next_number", "scan_of_number", "scan_progress", "store_client", "stream_tails"]
