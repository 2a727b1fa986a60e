"""The scans this package writes: their JSON document and their streams, written synchronously.

blissdata 2.4.5 writes a stream through ``scan.create_stream``: an ``EventStream`` whose
``send`` queues to a sink thread that sends once 10 ms pass without a new point, and that dies
on a connection error (every later ``join`` or ``seal`` then waits forever). A service has to
know that a command's data is in Redis when it answers, and has to go on once a restarted Redis
is back. ``StreamWriter`` sends the very entries blissdata's writer sends, in the caller's
request: blissdata's encoder of the stream's definition, ``XADD <key> <index>-1`` with the field
``payload`` (and ``len`` for a batch of more than one point), ``index`` the position of the
batch's first point; ``seal`` seals with the ``seal_stream`` Redis function blissdata installs. A
reader cannot tell the difference. A write that failed without an answer may have landed:
``resync`` reads the streams' ends again (a retry must not write a batch twice).

``create_scan`` writes the scan's first JSON document with its stream models in it (blissdata's
``create_scan`` writes none and adds them at ``prepare``): a reader loading the scan while it
is prepared (blissdata's ``Scan._load`` reads the document before the state) sees its streams
all the same. ``open_scan`` takes over a scan someone left open, its writers at the end of each
stream. This is the one module that reaches into blissdata's private writer side
(``DataStore._scan_model``, ``_stream_model``, ``Scan._load_rw``), as blissdata offers no
public way to write its entries synchronously.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from blissdata.redis_engine.scan import Scan, scan_creation_stream
from blissdata.redis_engine.store import DataStore
from blissdata.streams import StreamDefinition
from blissdata.streams.encoding import EncodedBatch, StreamEncoder
from blissdata.streams.encoding.json import JsonStreamEncoder
from blissdata.streams.encoding.numeric import NumericStreamEncoder

from ..data.connection import Redis, ResponseError

__all__ = ["HISTORY_LENGTH", "StreamWriter", "create_scan", "open_scan", "resync", "seal"]

HISTORY_LENGTH = 2048  # the length blissdata caps _SCAN_HISTORY_ at (MAXLEN ~)
SEAL_ID = b"18446744073709551615-18446744073709551615"  # the id of blissdata's seal entry
ENCODERS: dict[str, type[StreamEncoder]] = {"numeric": NumericStreamEncoder,
                                            "json": JsonStreamEncoder}


class StreamWriter:
    """The writer of one stream (see the module docstring); ``written``: the points in it."""

    def __init__(self, client: Redis, name: str, model: Any, encoder: StreamEncoder,
                 written: int = 0, sealed: bool = False) -> None:
        self.client, self.name, self.model, self.encoder = client, name, model, encoder
        self.key: str = model.key()
        self.written, self.sealed = written, sealed

    def send(self, data: Any) -> int:
        """Append one point, or a batch along the first axis (what the encoder takes), as one
        entry; returns the number of points. Nothing is counted when the request fails."""
        batch = self.encoder.encode(data)
        self.client.xadd(self.key, batch.todict(), id=f"{self.written}-1")
        self.written += batch.len
        return batch.len

    def _go_on_after(self, last: list[Any]) -> None:
        """Write on after ``last`` (the stream's last entry, as XREVRANGE COUNT 1 gives it)."""
        end = 0
        if last:
            entry_id, fields = last[0]
            if entry_id == SEAL_ID:
                self.sealed, end = True, int(fields[b"id"])
            else:
                end = int(entry_id.split(b"-")[0]) + int(fields.get(b"len", 1))
        self.written = end

    def json_points(self) -> list[Any]:
        """Every point of a JSON stream (a sequence's sub-scans), read back from Redis."""
        return [point for entry_id, fields in self.client.xrange(self.key)
                if entry_id != SEAL_ID
                for point in self.encoder.decode([EncodedBatch(fields[b"payload"])])]


def seal(writers: Iterable[StreamWriter]) -> None:
    """Seal the streams not sealed yet (blissdata's ``seal_stream``), in one round trip:
    readers learn they are complete. One sealed meanwhile by someone else counts as sealed."""
    unsealed = [writer for writer in writers if not writer.sealed]
    if not unsealed:
        return
    pipe = unsealed[0].client.pipeline(transaction=False)
    for writer in unsealed:
        pipe.fcall("seal_stream", 1, writer.key)
    failed = None
    for writer, result in zip(unsealed, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(result, ResponseError) and "is already sealed" not in str(result):
            failed = failed or result
        else:
            writer.sealed = True
    if failed is not None:
        raise failed


def resync(writers: Iterable[StreamWriter]) -> dict[str, int]:
    """Read the end of each stream again (in one round trip) and go on from there; returns, by
    stream name, the points Redis holds beyond ``written`` (a write whose answer was lost landed
    after all), negative when it holds fewer (a restart from older data lost the difference)."""
    writers = list(writers)
    if not writers:
        return {}
    pipe = writers[0].client.pipeline(transaction=False)
    for writer in writers:
        pipe.xrevrange(writer.key, count=1)
    landed = {}
    for writer, last in zip(writers, pipe.execute(), strict=True):
        before = writer.written
        writer._go_on_after(last)
        landed[writer.name] = writer.written - before
    return landed


def create_scan(store: DataStore, identity: Mapping[str, Any], info: Mapping[str, Any],
                definitions: Iterable[StreamDefinition]) -> tuple[Scan, dict[str, StreamWriter]]:
    """A CREATED scan whose first document declares its streams, and their writers by name:
    blissdata's ``create_scan`` (document, ``_SCAN_HISTORY_``, state stream, one transaction)
    with the stream models in the document from the start."""
    client = store._redis
    models = {definition.name: store._stream_model(encoding=definition.encoder.info(),
                                                   info=definition.info)
              for definition in definitions}
    identity_model = store._scan_model.model_fields["id"].annotation
    model = store._scan_model(id=identity_model(**identity),
                              info=Scan._filter_nan_values(dict(info)),
                              state_stream=store._stream_model(), data_streams=models)

    def write(pipe: Any) -> None:
        model.save(pipeline=pipe)
        pipe.xadd(scan_creation_stream, {"key": model.key()}, maxlen=HISTORY_LENGTH)
        pipe.xadd(model.state_stream.key(), {"state": 0})

    client.transaction(write)
    scan = Scan._load_rw(store, model.key())
    writers = {definition.name: StreamWriter(client, definition.name, models[definition.name],
                                             definition.encoder)
               for definition in definitions}
    return scan, writers


def open_scan(store: DataStore, key: str) -> tuple[Scan, dict[str, StreamWriter]]:
    """Scan ``key`` in write mode and a writer for each of its streams, each after the stream's
    last point (blissdata's ``ScanNotFoundError`` when it is gone)."""
    scan = Scan._load_rw(store, key)
    scan.json_info = json.dumps(scan.info)  # blissdata's mark of the info written: kept as is
    writers = {name: StreamWriter(store._redis, name, model,
                                  ENCODERS[model.encoding["type"]].from_info(model.encoding))
               for name, model in scan._model.data_streams.items()}
    resync(writers.values())
    return scan, writers
