"""Scan numbers of a SequenceManager in ``DataFormat bliss2``, in a real server process: shared
with Bliss 2.4's own counter (``SettingsRedisURL``: the hash ``{session}:scan_counter`` of a plain
Redis, as Beacon's settings Redis holds it) while Bliss takes numbers the way it does; without
it, past every scan of the session at each Start; AddScan and CreateGroup by number find a scan
before a sequence the device wrote; a settings Redis that is down refuses Start, nothing written.
"""

from __future__ import annotations

import json
import threading

import pytest
import tango

pytest.importorskip("blissdata.redis_engine.store", reason="blissdata 2.x (tango_groups[bliss2])")

from bliss2_support import snapshot, write_scan
from tango_checks import refused, wait_until

from tango_groups.bliss2 import find_scans
from tango_groups.data.connection import Redis, connect
from tango_groups.data.counters import NO_DATA_POLICY
from tango_groups.runtime.redis_server import free_port


def bliss_scan_number(settings: Redis, session: str, series: str = NO_DATA_POLICY) -> int:
    """A number taken as Bliss 2.4's ``_incr_scan_number`` takes it: the series read first, then,
    in another request, ``HINCRBY count`` when it is the hash's, else the hash set anew."""
    key = f"{session}:scan_counter"
    if settings.hget(key, "name") == series.encode():
        return int(settings.hincrby(key, "count", 1))
    settings.hset(key, mapping={"name": series, "count": 1})
    return 1


@pytest.fixture
def settings(redis_server):
    """A client of the settings Redis: a plain redis-server, db 0 (Beacon's)."""
    client = connect(redis_server.url, db=0)
    yield client
    client.close()


def number_of(store, key: str) -> int:
    return int(store.load_scan(key).number)


def test_bliss_and_the_device_never_take_the_same_number(store, session_name, start_device,
                                                         settings, redis_server):
    series = "/data/id00/inhouse/sample/sample_0001/sample_0001"
    first = write_scan(store, session_name, bliss_scan_number(settings, session_name, series))
    proxy = start_device(SettingsRedisURL=redis_server.url).proxy
    taken_by_bliss: list[int] = []
    done = threading.Event()

    def bliss() -> None:
        while not done.is_set() and len(taken_by_bliss) < 5000:
            taken_by_bliss.append(bliss_scan_number(settings, session_name, series))

    scans = threading.Thread(target=bliss)
    scans.start()
    try:
        taken_by_device = []
        for index in range(8):
            proxy.Start(f"sequence {index}")
            taken_by_device.append(proxy.SequenceNumber)
            proxy.End()
            group = proxy.CreateGroup(json.dumps({"scans": [first]}))
            taken_by_device.append(number_of(store, group))
    finally:
        done.set()
        scans.join(timeout=30)
    everything = [1, *taken_by_bliss, *taken_by_device]
    assert sorted(everything) == list(range(1, len(everything) + 1))  # each number once, no gap
    assert min(taken_by_bliss) < max(taken_by_device) and max(taken_by_bliss) > min(
        taken_by_device)  # Bliss counted between the device's numbers
    assert settings.hget(f"{session_name}:scan_counter", "name") == series.encode()


def test_a_scan_series_counts_on_or_starts_again_as_bliss_does(store, session_name, start_device,
                                                              settings, redis_server):
    key = f"{session_name}:scan_counter"
    settings.hset(key, mapping={"name": "/data/a", "count": 4})
    proxy = start_device(SettingsRedisURL=redis_server.url, ScanSeries="/data/a").proxy
    proxy.Start("same series")
    assert proxy.SequenceNumber == 5
    proxy.End()
    assert bliss_scan_number(settings, session_name, "/data/b") == 1  # Bliss: a new dataset
    proxy.Start("its series again")
    assert proxy.SequenceNumber == 1  # Bliss's rule: another series starts again at 1
    proxy.End()
    assert settings.hgetall(key) == {b"name": b"/data/a", b"count": b"1"}
    assert [number_of(store, each) for each in find_scans(store, session_name)] == [5, 1]


def test_a_bliss_scan_written_after_the_counter_is_counted_past(store, session_name,
                                                                start_device):
    write_scan(store, session_name, 3)
    proxy = start_device().proxy
    proxy.Start("")
    assert proxy.SequenceNumber == 4
    proxy.End()
    later = write_scan(store, session_name, 9)  # Bliss 2 counts in a Redis the device does not see
    proxy.Start("")
    assert proxy.SequenceNumber == 10
    proxy.End()
    write_scan(store, session_name, 15)
    assert number_of(store, proxy.CreateGroup(json.dumps({"scans": [later]}))) == 16


def test_a_number_finds_the_scan_before_a_sequence_of_the_device(store, session_name,
                                                                  start_device, settings,
                                                                  redis_server):
    scan = write_scan(store, session_name, bliss_scan_number(settings, session_name))
    settings.hset(f"{session_name}:scan_counter", "count", 0)  # Bliss's reset_scan_number()
    proxy = start_device(SettingsRedisURL=redis_server.url).proxy
    colliding = proxy.Start("numbered 1 too")
    assert proxy.SequenceNumber == 1
    proxy.End()
    own = proxy.Start("numbered 2")
    proxy.End()
    proxy.Start("the sequence")
    assert proxy.AddScan("1") == scan  # not the newer sequence numbered 1
    assert proxy.AddScan("2") == own  # only the device's own: that one, as before
    proxy.End()
    group = proxy.CreateGroup("1")
    assert [each["key"] for each in snapshot(store._url.split("?")[0], group)["references"]] == [
        scan]
    assert store.load_scan(colliding).info["written_by"] == "tango_groups"
    assert "written_by" not in store.load_scan(scan).info


def test_a_pending_number_waits_for_a_scan_not_for_a_group_of_the_device(
        store, session_name, start_device, settings, redis_server):
    """Bliss's counter reset (a new dataset) gives a group of the device the number a client
    awaits: the sequence references the Bliss scan of that number once it runs."""
    member = write_scan(store, session_name, bliss_scan_number(settings, session_name))
    proxy = start_device(SettingsRedisURL=redis_server.url).proxy
    proxy.Start(json.dumps({"title": "awaits 3"}))  # number 2
    assert proxy.AddScan("3") == "pending:3"
    group = proxy.CreateGroup("1")  # the counter's next number: the one the client awaits
    assert number_of(store, group) == 3
    later = write_scan(store, session_name, 3)  # the scan the client meant
    wait_until(lambda: list(proxy.ScanNames) == [later], what=lambda: list(proxy.ScanNames))
    assert proxy.End() == "DONE" and member != later


def test_a_settings_redis_down_refuses_start_and_writes_nothing(store, session_name,
                                                                 start_device):
    scan = write_scan(store, session_name, 1)
    url = f"redis://:s3cret@127.0.0.1:{free_port()}"
    proxy = start_device(SettingsRedisURL=url, RedisTimeout=0.5).proxy
    for call in (lambda: proxy.Start(""), lambda: proxy.CreateGroup(scan)):
        desc = refused("SequenceManager_RedisUnavailable", call)
        assert "SettingsRedisURL" in desc and "***" in desc and "s3cret" not in desc, desc
    assert find_scans(store, session_name) == [scan]
    assert proxy.State() == tango.DevState.ON  # the data Redis answers: no FAULT
    assert "s3cret" not in proxy.Status()
