"""The device lease and the fenced client (``tango_groups.data.lease``) on a real Redis: a whole
scan written through a fenced client lands as through a plain one; once another holder took the
lease over, no write of the old holder lands (pipelines, single commands, scripts), and it answers
``LeaseLostError``; a lease that expired with no one taking it, or that Redis lost with both its
keys, is taken back by its holder."""

from __future__ import annotations

import time

import numpy
import pytest
from redis_checker import KeySnapshot

from tango_groups.bliss1 import keys
from tango_groups.bliss1.channel import ChannelNode
from tango_groups.bliss1.fenced import FencedRedis
from tango_groups.data.connection import connect
from tango_groups.data.lease import Lease, LeaseLostError
from tango_groups.session import Session


def _dump(client, session: str) -> dict:
    """Every key of ``session`` with its content (what a reader can see)."""
    found = {}
    for key in sorted(client.scan_iter(f"{session}[:_]*")) + [session.encode()]:
        kind = client.type(key)
        if kind == b"hash":
            found[key] = client.hgetall(key)
        elif kind == b"stream":
            found[key] = [entry[1] for entry in client.xrange(key)]
    return found


def _fenced(url: str, lease: Lease) -> FencedRedis:
    client = connect(url, client_class=FencedRedis)
    client.lease = lease
    return client


def _write_scan(client, session: str) -> None:
    writer = Session(session, client=client).model.writer
    parent = writer.ensure_containers([session, "scans"])
    scan = writer.create_scan(parent, "loopscan", {"title": "t"},
                              channels=[ChannelNode(("timer",), "x", float)])
    scan.prepared({})
    scan.channel("timer:x").emit(numpy.arange(3.0))
    scan.end({}, "DONE")


def test_fenced_writes_land_as_plain_ones(redis_url, redis_client, session_name):
    lease = Lease(session_name, "dev/a/1", 5.0)
    fenced = _fenced(redis_url, lease)
    assert lease.acquire(fenced) is None and lease.token == 1
    _write_scan(fenced, session_name)
    _write_scan(redis_client, "plain" + session_name)
    fenced_dump = _dump(redis_client, session_name)
    plain_dump = _dump(redis_client, "plain" + session_name)
    assert len(fenced_dump) == len(plain_dump) > 5
    for key, value in fenced_dump.items():
        twin = plain_dump[key.replace(session_name.encode(), ("plain" + session_name).encode())]
        if isinstance(value, dict):
            assert value.keys() == twin.keys(), key
        else:
            assert len(value) == len(twin), key
    fenced.close()


def test_a_taken_over_holder_writes_nothing(redis_url, redis_client, session_name):
    first, second = Lease(session_name, "dev/a/1", 0.3), Lease(session_name, "dev/a/1", 5.0)
    old, new = _fenced(redis_url, first), _fenced(redis_url, second)
    first.acquire(old)
    _write_scan(old, session_name)
    holder = second.acquire(new)
    assert holder is not None and holder.token == "1" and holder.name == first.holder
    deadline = time.monotonic() + 5
    while second.acquire(new) is not None:  # waits for the first lease to expire
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert second.token == 2
    assert len(_dump(redis_client, session_name)) > 5
    before = KeySnapshot.take(redis_client)
    for write in (lambda: _write_scan(old, session_name),
                  lambda: old.set(session_name + ":x", b"1"),
                  lambda: old.hincrby(session_name, keys.SCAN_COUNTER, 1)):
        with pytest.raises(LeaseLostError) as lost:
            write()
        assert second.value in str(lost.value)
    with pytest.raises(LeaseLostError):
        first.renew(old)
    assert KeySnapshot.take(redis_client).diff(before) == []
    assert old.get(session_name + ":x") is None  # reads are not fenced
    _write_scan(new, session_name)
    old.close()
    new.close()


def test_a_lease_expired_or_lost_with_redis_is_taken_back(redis_url, redis_client, session_name):
    lease = Lease(session_name, "dev/a/1", 0.1)
    client = _fenced(redis_url, lease)
    lease.acquire(client)
    time.sleep(0.3)  # the lease expires: nothing to wait for, no one takes it
    assert redis_client.get(lease.keys[0]) is None
    client.set(session_name + ":x", b"1")
    assert redis_client.get(lease.keys[0]) == lease.value.encode()
    redis_client.delete(*lease.keys)  # Redis restarted empty: both keys are gone
    client.set(session_name + ":y", b"1")
    assert redis_client.get(lease.keys[0]) == lease.value.encode()
    assert redis_client.get(lease.keys[1]) == str(lease.token).encode()
    lease.release(client)
    assert redis_client.get(lease.keys[0]) is None
    client.close()
