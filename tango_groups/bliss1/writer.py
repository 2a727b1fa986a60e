"""Writers of Bliss 1.x data nodes: path containers, scans, groups, devices, channels.

Every logical update is one Redis round trip (a MULTI/EXEC transaction), written in the order live
readers need it: a node's struct *with its version* before its NEW_NODE registration, a scan's nodes
before PREPARED, a sub-scan node before its reference in a group, everything before END. Input is
validated before the transaction is built, so a refused update leaves nothing half-written.

Channel streams are never trimmed (Bliss trims at ~2048 entries with ``MAXLEN ~``, which silently
drops the oldest scans of long sequences): a channel keeps every point until its keys expire.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy
import redis

from ..data.channel import ChannelSpec
from ..data.counters import next_number
from . import encoding, keys, scripts
from .channel import ChannelNode, ChannelWriter, emit_blocks

__all__ = [
    "ChannelNode",  # re-exported: what a writer's user declares
    "DataWriter",
    "Expiration",
    "GroupWriter",
    "ScanWriter",
]

STRTIME_FORMAT = "%a %b %d %H:%M:%S %Y"


@dataclasses.dataclass(frozen=True)
class Expiration:
    """Seconds to live set when a scan ends, as Bliss does (None or 0: keep forever).

    ``data`` applies to a scan's devices and channels, ``parent`` to the scan itself and every
    container above it.
    """

    data: int | None = 600
    parent: int | None = 86400


def _now() -> tuple[datetime.datetime, float]:
    stamp = time.time()
    return datetime.datetime.fromtimestamp(stamp), stamp


def _merge_info(stored: Mapping[str, Any], update: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Bliss's scan_info merge at PREPARED/END: deep-merge mappings, replace others, None
    deletes."""
    merged, deleted = {}, []
    for key, value in update.items():
        if value is None:
            deleted.append(key)
            continue
        old = stored.get(key)
        if isinstance(old, Mapping) and old and isinstance(value, Mapping) and value:
            merged[key] = _deep_merge(old, value)
        else:
            merged[key] = value
    return merged, deleted


def _deep_merge(old: Mapping, new: Mapping) -> dict:
    result = dict(old)
    for key, value in new.items():
        if isinstance(result.get(key), Mapping) and isinstance(value, Mapping):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result


class DataWriter:
    """Entry point of the writer: one data Redis, one expiration policy.

    Thread-safe: every method is a self-contained round trip; scan numbers come from HINCRBY.
    """

    def __init__(self, client: redis.Redis, expiration: Expiration = Expiration()) -> None:
        self.client = client
        self.expiration = expiration

    # -- nodes ------------------------------------------------------------------------------
    def queue_node(
        self,
        pipe: redis.client.Pipeline,
        db_name: str,
        node_type: str,
        streams: Iterable[str],
        *,
        name: str | None = None,
        info: Mapping[str, Any] | None = None,
        register: bool = True,
    ) -> None:
        """Queue the commands creating one node (info, struct with version, streams,
        registration)."""
        parents = keys.ancestors(db_name)
        if info is not None:
            pipe.hset(
                db_name + keys.INFO,
                mapping={k: encoding.dumps(v) for k, v in {**info, "node_name": db_name}.items()},
            )
        struct = {
            "name": name if name is not None else keys.local_name(db_name),
            "db_name": db_name,
            "node_type": node_type,
            "version": keys.NODE_VERSION,
        }
        if parents:
            struct["parent"] = parents[0]
        pipe.hset(db_name, mapping=struct)
        stream_keys = [db_name + suffix for suffix in streams]
        if stream_keys:
            scripts.run(pipe, scripts.CREATE_EMPTY_STREAMS, keys=stream_keys)
        if register and parents:
            self.queue_registration(pipe, parents[0], db_name)

    @staticmethod
    def queue_registration(pipe: redis.client.Pipeline, parent: str, db_name: str) -> None:
        pipe.xadd(parent + keys.CHILDREN, {"__EVENT__": "NEW_NODE", "db_name": db_name})

    def ensure_containers(self, parts: Sequence[str]) -> str:
        """Get-or-create the path containers ``parts[0]:parts[1]:...``; returns the last db_name.

        Existing supported containers are reused and not registered again (Bliss's behaviour).
        """
        for part in parts:
            keys.check_local_name(part)
        db_names = [":".join(parts[: i + 1]) for i in range(len(parts))]
        with self.client.pipeline(transaction=False) as pipe:
            for db_name in db_names:
                pipe.hget(db_name, "version")
            versions = pipe.execute()
        missing = [d for d, v in zip(db_names, versions) if not keys.is_supported_version(v)]
        if missing:
            with self.client.pipeline() as pipe:
                for db_name in missing:
                    self.queue_node(pipe, db_name, keys.CONTAINER_TYPE, [keys.CHILDREN])
                pipe.execute()
        return db_names[-1]

    def next_scan_number(self, parent: str, shadow: bool = False) -> int:
        """Allocate a scan number in ``parent`` exactly as Bliss 1.11 does (HINCRBY on its
        struct)."""
        field = keys.SHADOW_SCAN_COUNTER if shadow else keys.SCAN_COUNTER
        return next_number(self.client, parent, field)

    def create_scan(
        self,
        parent: str,
        name: str,
        scan_info: Mapping[str, Any],
        *,
        node_type: str = "scan",
        shadow: bool = False,
        channels: Sequence[ChannelNode] = (),
        writer_class: type[ScanWriter] | None = None,
    ) -> ScanWriter:
        """Allocate a number, create and register the scan node with its devices and channels.

        Returns the writer of the new scan; ``scan_info["scan_nb"]`` is set to the number.
        """
        keys.check_local_name(name)
        scan_nb = self.next_scan_number(parent, shadow)
        local = f"_{scan_nb}_{name}" if shadow else f"{scan_nb}_{name}"
        writer = (writer_class or ScanWriter)(
            self, keys.child_db_name(parent, local), {**scan_info, "scan_nb": scan_nb})
        with self.client.pipeline() as pipe:
            self.queue_node(
                pipe, writer.db_name, node_type, [keys.CHILDREN, keys.PREPARED, keys.END],
                info=writer.info,
            )
            writer.queue_channels(pipe, channels)
            pipe.execute()
        return writer

    # -- expiration ---------------------------------------------------------------------------
    def queue_expiration(self, pipe: redis.client.Pipeline, key_names: Iterable[str],
                         seconds: int | None) -> None:
        if seconds:
            for key in key_names:
                pipe.expire(key, seconds)

    def parent_keys(self, scan_db_name: str) -> list[str]:
        """Keys getting the parent TTL when a scan ends: the scan's own and its ancestors'."""
        own = [scan_db_name + s for s in ("", keys.INFO, keys.CHILDREN, keys.END, keys.PREPARED)]
        above = [a + s for a in keys.ancestors(scan_db_name)
                 for s in ("", keys.INFO, keys.CHILDREN)]
        return own + above

    def queue_refresh(self, pipe: redis.client.Pipeline, scan_db_name: str) -> None:
        """Queue the refresh of a finished scan's TTLs (a grouped scan lives as long as its
        group): its subtree gets the data TTL, the scan and its containers the parent TTL. Work
        proportional to the scan's own subtree; nothing when the scan runs or is gone."""
        scripts.run(pipe, scripts.REFRESH_EXPIRATION,
                    args=[scan_db_name, self.expiration.data or 0, self.expiration.parent or 0,
                          *self.parent_keys(scan_db_name)])


class ScanWriter:
    """A scan or scan_group node being written: devices and channels, PREPARED, state, END."""

    def __init__(self, writer: DataWriter, db_name: str, info: Mapping[str, Any]) -> None:
        self.writer = writer
        self.db_name = db_name
        self.info: dict[str, Any] = dict(info)  # what _info holds, to merge like Bliss does
        self.channels: dict[str, ChannelWriter] = {}
        self._data_nodes: list[str] = []  # devices and channels, for the data TTL
        self.ended = False

    @property
    def scan_nb(self) -> int:
        return int(self.info["scan_nb"])

    def _layout(self, specs: Sequence[ChannelNode]) -> Iterator[tuple[str, ChannelNode | None]]:
        """Nodes the channels need below the scan, parents first: each device container once
        (``(db_name, None)``), then each channel (``(db_name, spec)``)."""
        created = set(self._data_nodes)
        for spec in specs:
            parent = self.db_name
            for device in spec.device:
                parent = keys.child_db_name(parent, device)
                if parent not in created:
                    created.add(parent)
                    yield parent, None
            db_name = keys.child_db_name(parent, spec.name)
            if db_name in created:
                raise ValueError(f"duplicate channel {db_name!r}")
            created.add(db_name)
            yield db_name, spec

    def _attach(self, db_name: str, spec: ChannelNode | None) -> None:
        self._data_nodes.append(db_name)
        if spec is not None:
            self.channels[spec.channel_fullname] = ChannelWriter(self.writer.client, db_name, spec)

    def queue_channels(self, pipe: redis.client.Pipeline, specs: Sequence[ChannelNode]) -> None:
        """Queue device containers (registered once) and channels, parents before children."""
        for db_name, spec in self._layout(specs):
            if spec is None:
                self.writer.queue_node(pipe, db_name, keys.DEVICE_TYPE, [keys.CHILDREN])
            else:
                info = {"shape": tuple(spec.shape), "dtype": spec.dtype,
                        "fullname": spec.channel_fullname, "unit": spec.unit}
                self.writer.queue_node(pipe, db_name, spec.node_type, [keys.DATA],
                                       name=spec.channel_fullname, info=info)
            self._attach(db_name, spec)

    def attach_channels(self, specs: Sequence[ChannelNode]) -> None:
        """Writers for channels already in Redis (a scan re-opened by another process); their
        ``resync`` finds where to continue."""
        for db_name, spec in self._layout(specs):
            self._attach(db_name, spec)

    def channel(self, fullname: str) -> ChannelWriter:
        try:
            return self.channels[fullname]
        except KeyError:
            raise KeyError(f"no channel {fullname!r} in {self.db_name}; channels: "
                           f"{sorted(self.channels)}") from None

    def emit(self, points: Mapping[str, Any]) -> dict[str, numpy.ndarray]:
        """Check points of several channels, then publish them all in one round trip."""
        blocks = {self.channel(name): self.channel(name).node.points(data)
                  for name, data in points.items()}
        emit_blocks(blocks)
        return {channel.node.channel_fullname: block for channel, block in blocks.items()}

    def _queue_info_update(self, pipe: redis.client.Pipeline, update: Mapping[str, Any]) -> None:
        merged, deleted = _merge_info(self.info, update)
        if merged:
            pipe.hset(self.db_name + keys.INFO,
                      mapping={k: encoding.dumps(v) for k, v in merged.items()})
        if deleted:
            pipe.hdel(self.db_name + keys.INFO, *deleted)
        self.info.update(merged)
        for key in deleted:
            self.info.pop(key, None)

    def prepared(self, scan_info: Mapping[str, Any], state: str = "STARTING") -> None:
        """scan_info re-written, PREPARED_SCAN published and the state set, in one transaction."""
        stamp_dt, stamp = _now()
        with self.writer.client.pipeline() as pipe:
            self._queue_info_update(pipe, {**scan_info, "state": state})
            pipe.xadd(self.db_name + keys.PREPARED, {
                "__EVENT__": "PREPARED_SCAN",
                "__TIMESTAMP__": encoding.dumps(stamp),
                "__STRTIME__": stamp_dt.strftime(STRTIME_FORMAT),
            })
            pipe.execute()

    def set_state(self, state: str) -> None:
        with self.writer.client.pipeline() as pipe:
            self._queue_info_update(pipe, {"state": state})
            pipe.execute()

    def end(self, scan_info: Mapping[str, Any], state: str, exception: str = "",
            once: bool = False) -> str:
        """END_SCAN with end times, final state and TTLs: one transaction, nothing after it.
        Returns the final state.

        Bliss writes the final state just after END_SCAN; writing it in the same transaction means
        a reader reacting to END_SCAN already reads the final state. ``once``: first check (one
        more round trip) that no END_SCAN is there yet, for a retry after a failed attempt that
        may have landed; if one is, nothing is written and the stored state is returned.
        """
        if once:
            with self.writer.client.pipeline(transaction=False) as pipe:
                pipe.xlen(self.db_name + keys.END)
                pipe.hget(self.db_name + keys.INFO, "state")
                ended, stored = pipe.execute()
            if ended:
                self.ended = True
                return str(encoding.loads(stored)) if stored is not None else state
        end_dt, end_stamp = _now()
        update = {**scan_info, "end_time": end_dt,
                  "end_time_str": end_dt.strftime(STRTIME_FORMAT), "end_timestamp": end_stamp,
                  "state": state}
        expiration = self.writer.expiration
        with self.writer.client.pipeline() as pipe:
            self._queue_info_update(pipe, update)
            pipe.xadd(self.db_name + keys.END, {
                "__EVENT__": "END_SCAN",
                "__TIMESTAMP__": encoding.dumps(end_stamp),
                "__STRTIME__": end_dt.strftime(STRTIME_FORMAT),
                "__EXCEPTION__": encoding.dumps(exception),
            })
            data_keys = [n + s for n in self._data_nodes
                         for s in ("", keys.INFO, keys.CHILDREN, keys.DATA)]
            self.writer.queue_expiration(pipe, data_keys, expiration.data)
            self.writer.queue_expiration(pipe, self.writer.parent_keys(self.db_name),
                                         expiration.parent)
            pipe.execute()
        self.ended = True
        return state


class GroupWriter(ScanWriter):
    """A sequence (scan_group): ``GroupingMaster`` with ``scans``, ``scan_numbers`` and custom
    channels; sub-scans are published as a (scan_numbers, scans) pair in one transaction."""

    MASTER = (keys.GROUPING_MASTER,)
    CUSTOM = (keys.GROUPING_MASTER, keys.CUSTOM_CHANNELS)

    @classmethod
    def channel_specs(cls, custom: Sequence[ChannelSpec] = ()) -> list[ChannelNode]:
        """The group's channels: the two reference channels, then the custom ones."""
        specs = [
            ChannelNode(cls.MASTER, keys.SCANS_CHANNEL, str, fullname=keys.SCANS_CHANNEL,
                        node_type="node_ref_channel"),
            ChannelNode(cls.MASTER, keys.SCAN_NUMBERS_CHANNEL, int,
                        fullname=keys.SCAN_NUMBERS_CHANNEL),
        ]
        return specs + [ChannelNode.at(cls.CUSTOM, spec) for spec in custom]

    @property
    def scans(self) -> ChannelWriter:
        return self.channels[keys.SCANS_CHANNEL]

    @property
    def scan_numbers(self) -> ChannelWriter:
        return self.channels[keys.SCAN_NUMBERS_CHANNEL]

    @property
    def custom_channels(self) -> dict[str, ChannelWriter]:
        return {n: c for n, c in self.channels.items()
                if c.node.device == self.CUSTOM}

    def resync(self) -> dict[str, Any]:
        """Re-read every channel's length; returns the points found beyond what was known, by
        channel fullname (``scans``: db_names; all of them for channels just attached)."""
        found = {}
        for name, channel in self.channels.items():
            known = channel.length
            if channel.resync() > known:
                found[name] = channel.read(known)
        return found

    def publish_scan(self, scan_db_name: str, scan_nb: int, ended: bool | None = None) -> None:
        """Reference a sub-scan (its node must exist): ``scan_numbers`` then ``scans``, and the
        refresh of the sub-scan's TTLs if it already ended (Bliss keeps grouped scans alive as
        long as their group), in one round trip. ``ended``: whether the caller knows it ended
        (False: no refresh; None: the refresh script checks)."""
        emit_blocks({self.scan_numbers: numpy.array([scan_nb], dtype=numpy.int64),
                     self.scans: [scan_db_name]},
                    then=None if ended is False
                    else lambda pipe: self.writer.queue_refresh(pipe, scan_db_name))
