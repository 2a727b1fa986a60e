"""The counters of ``tango_groups.data.counters`` against a real redis-server: each number taken
once across threads (the Lua scripts are atomic), Bliss 2.4's series rule in ``SharedCounter``
(the hash ``{session}:scan_counter`` of its settings Redis), a Redis that fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tango_groups.data.connection import connect
from tango_groups.data.counters import (
    NO_DATA_POLICY,
    CounterUnavailable,
    SharedCounter,
    last_number,
    next_number,
)
from tango_groups.runtime.redis_server import free_port

THREADS, EACH = 8, 50


def taken_together(take: Callable[[], int]) -> list[int]:
    """The numbers ``take()`` gives when THREADS threads call it EACH times, all at once."""
    numbers: list[int] = []
    lock, barrier = threading.Lock(), threading.Barrier(THREADS)

    def run() -> None:
        barrier.wait()
        mine = [take() for _ in range(EACH)]
        with lock:
            numbers.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(numbers) == THREADS * EACH
    return numbers


def test_a_counter_moved_past_a_floor_gives_each_number_once(redis_client):
    assert next_number(redis_client, "count", "last", floor=4) == 5  # created past the floor
    assert next_number(redis_client, "count", "last", floor=2) == 6  # a lower floor: counts on
    assert next_number(redis_client, "count", "last") == 7
    numbers = taken_together(lambda: next_number(redis_client, "count", "last", floor=7))
    assert sorted(numbers) == list(range(8, 8 + THREADS * EACH))
    assert last_number(redis_client, "count", "last") == 7 + THREADS * EACH


def test_the_shared_counter_gives_each_number_once_across_threads(redis_client):
    redis_client.hset("demo:scan_counter", mapping={"name": "/data/id00/sample", "count": 10})
    counters = [SharedCounter(redis_client, "redis://x", "demo") for _ in range(THREADS)]
    numbers = taken_together(lambda: counters[threading.get_ident() % THREADS].next())
    assert sorted(numbers) == list(range(11, 11 + THREADS * EACH))
    assert redis_client.hgetall("demo:scan_counter") == {
        b"name": b"/data/id00/sample", b"count": str(10 + THREADS * EACH).encode()}


def test_no_series_continues_the_series_the_counter_holds(redis_client):
    counter = SharedCounter(redis_client, "redis://x", "demo")
    assert counter.last() == 0
    assert counter.next() == 1  # no hash yet: Bliss's series of a session without data policy
    assert redis_client.hgetall("demo:scan_counter") == {b"name": NO_DATA_POLICY.encode(),
                                                         b"count": b"1"}
    redis_client.hset("demo:scan_counter", mapping={"name": "/data/id00/sample", "count": 41})
    assert counter.last() == 41
    assert counter.next() == 42
    assert redis_client.hget("demo:scan_counter", "name") == b"/data/id00/sample"


def test_a_series_counts_on_when_it_matches_and_starts_again_when_not(redis_client):
    counter = SharedCounter(redis_client, "redis://x", "demo", "/data/id00/sample")
    redis_client.hset("demo:scan_counter", mapping={"name": "/data/id00/sample", "count": 7})
    assert (counter.last(), counter.next(), counter.next()) == (7, 8, 9)
    redis_client.hset("demo:scan_counter", mapping={"name": "/data/id00/other", "count": 30})
    assert counter.last() == 0  # another series: the next number starts it again
    assert counter.next() == 1
    assert redis_client.hgetall("demo:scan_counter") == {b"name": b"/data/id00/sample",
                                                         b"count": b"1"}


def test_a_counter_whose_redis_is_down_says_so_without_its_password():
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    client = connect(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    counter = SharedCounter(client, url, "demo")
    for take in (counter.next, counter.last):
        with pytest.raises(CounterUnavailable) as failure:
            take()
        assert "demo:scan_counter" in str(failure.value) and "s3cret" not in str(failure.value)
        assert "***" in str(failure.value)


def test_a_script_the_server_forgot_is_sent_again(redis_client):
    """EVALSHA of a script the Redis no longer caches (restarted, SCRIPT FLUSH) falls back to
    EVAL: a counter made before works on."""
    counter = SharedCounter(redis_client, "redis://x", "demo")
    assert counter.next() == 1
    redis_client.script_flush()
    assert counter.next() == 2
    redis_client.script_flush()
    assert next_number(redis_client, "count", "last", floor=3) == 4
