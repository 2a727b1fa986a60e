"""From the SequenceManager's device properties to its service: checked, connected, built.

Properties are checked before anything connects (a bad value puts the device in FAULT with a
status that names it; Init retries). The service gets two Redis clients: one for commands, whose
socket timeout is ``RedisTimeout`` (at most ``MAX_REDIS_TIMEOUT``, below the 3 s Tango client
timeout, so that a client always gets the device's own answer), and one for the pending-scan
followers, which block in ``XREAD`` for up to ``BLOCK_MS`` and need a longer timeout. The Redis
password comes from the URL or from ``RedisPasswordFile`` (kept out of the Tango database), read
again at every new connection (a fixed or rotated password is used from the next reconnection on:
the health check's, within ``HealthCheckPeriod``), and is never logged. The command client is
fenced by the device's lease (``LeaseTime``, ``tango_groups.data.lease``): every write of the
data it carries checks the lease in the same round trip.

``DataFormat`` picks the data model: ``bliss1`` (data nodes, ``Bliss1Service``), ``bliss2``
(blissdata 2.x scans, ``Bliss2Service``: two blissdata stores on the same URL, logical db 0
unless the URL names one, with the same timeouts; the running record stays with the 1.x client)
or ``both`` (``BothService``, composed from the factories of the other two, sharing the
session). blissdata connects when its store is made: a Redis that refuses it then is an invalid
configuration (FAULT until Init). With ``SettingsRedisURL``, the Bliss 2 numbers come from
Bliss's own counter in that Redis (``data.counters.SharedCounter``, series ``ScanSeries``),
connected at the first number.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from tango_groups.bliss1.fenced import FencedRedis
from tango_groups.bliss1.streams import BLOCK_MS
from tango_groups.bliss1.writer import Expiration
from tango_groups.data.connection import (
    PasswordFile,
    RedisError,
    connect,
    password_file,
    redact,
    use_credentials,
    with_password,
)
from tango_groups.data.counters import SharedCounter
from tango_groups.data.lease import Lease
from tango_groups.formats import DataFormat
from tango_groups.service.bliss1 import Bliss1Service
from tango_groups.service.both import BothService
from tango_groups.service.core import RECOVERY_MODES
from tango_groups.service.messages import Names
from tango_groups.service.notifications import NotificationCallback
from tango_groups.service.protocol import SequenceService
from tango_groups.session import Session

if TYPE_CHECKING:  # blissdata 2.x is an extra: imported only for DataFormat bliss2
    from tango_groups.service.bliss2 import Bliss2Service

__all__ = ["DEFAULT_LEASE_TIME", "MAX_REDIS_TIMEOUT", "NAMES",
           "create_service"]

# how the service's messages name what to change: the device's properties and commands
NAMES = Names(redis_url="RedisURL", password_file="RedisPasswordFile",
              settings_redis_url="SettingsRedisURL",
              health_period="HealthCheckPeriod", end_timeout="EndTimeout",
              reopen="restart the server or run Init")

MAX_REDIS_TIMEOUT = 2.5  # s: below the 3 s Tango client timeout, so a client gets our answer
DEFAULT_LEASE_TIME = 5.0  # s: LeaseTime 0, unless 2 x HealthCheckPeriod + RedisTimeout is longer



def create_service(device: Any, on_change: NotificationCallback) -> SequenceService:
    """The service ``device`` (a SequenceManager, through its properties) runs; ValueError or
    OSError for a property that cannot work."""
    if not 0 < device.RedisTimeout <= MAX_REDIS_TIMEOUT:
        raise ValueError(f"RedisTimeout {device.RedisTimeout} s: use a value in "
                         f"(0, {MAX_REDIS_TIMEOUT}]")
    if device.RecoveryMode not in RECOVERY_MODES:
        raise ValueError(f"RecoveryMode {device.RecoveryMode!r}: use one of "
                         f"{', '.join(RECOVERY_MODES)}")
    if device.DataFormat not in tuple(DataFormat):
        raise ValueError(f"DataFormat {device.DataFormat!r}: use one of "
                         f"{', '.join(each.value for each in DataFormat)}")
    shortest = 2 * device.HealthCheckPeriod + device.RedisTimeout
    lease_time = device.LeaseTime or max(DEFAULT_LEASE_TIME, shortest)
    if lease_time < shortest:
        raise ValueError(f"LeaseTime {device.LeaseTime} s: use at least 2 x HealthCheckPeriod + "
                         f"RedisTimeout ({shortest:g} s), so that a late renewal does not lose "
                         "the lease")
    if device.ChannelWindow < 1:
        raise ValueError(f"ChannelWindow {device.ChannelWindow}: use a positive number of points")
    expiration = Expiration(data=device.DataExpiration or None,
                            parent=device.ParentExpiration or None)
    credentials = password_file(device.RedisURL, device.RedisPasswordFile)
    if credentials is not None:
        credentials.read()  # an unreadable file is an invalid property (OSError)
    timeout = device.RedisTimeout
    client = connect(device.RedisURL, credentials, FencedRedis, socket_timeout=timeout,
                     socket_connect_timeout=timeout)
    client.lease = Lease(device.Session, device.get_name(), lease_time)
    watch_client = connect(device.RedisURL, credentials,
                           socket_timeout=BLOCK_MS / 1000 + timeout, socket_connect_timeout=timeout)
    session = Session(device.Session, redis_url=device.RedisURL, base_path=device.BasePath,
                      expiration=expiration, client=client)
    if device.DataFormat == DataFormat.BLISS2:
        watch_client.close()
        return _bliss2_service(device, session, credentials, on_change)

    def bliss1(callback: NotificationCallback) -> Bliss1Service:
        return Bliss1Service(session, device.RedisURL, owner=device.get_name(),
                             watch_client=watch_client, end_timeout=device.EndTimeout,
                             recovery=device.RecoveryMode, on_change=callback, names=NAMES)

    if device.DataFormat == DataFormat.BLISS1:
        return bliss1(on_change)
    return BothService(bliss1, functools.partial(_bliss2_service, device, session, credentials),
                       on_change)


def _bliss2_service(device: Any, session: Session, credentials: PasswordFile | None,
                    on_change: NotificationCallback) -> Bliss2Service:
    """blissdata 2.x is an extra (``tango_groups[bliss2]``): imported only for this model."""
    try:
        from tango_groups.bliss2 import data_store, store_client
        from tango_groups.bliss2.h5maps import Saving
        from tango_groups.service.bliss2 import Bliss2Service
    except ImportError as error:
        raise ValueError(f"DataFormat {device.DataFormat} needs blissdata 2.x ({error}): "
                         "pip install 'tango_groups[bliss2]'") from None
    # blank: saving off (an empty property value reaches the device as " ")
    saving = Saving(device.BasePath, device.SavingTemplate, device.DataFilename.strip())
    try:
        saving.check()
    except ValueError as error:
        raise ValueError(f"BasePath, SavingTemplate, DataFilename: {error}") from None
    password = None if credentials is None else credentials.read()
    url, timeout, block = with_password(device.RedisURL, password), device.RedisTimeout, 0.5
    try:
        store, watch_store = data_store(url, timeout), data_store(url, block + timeout)
    except RuntimeError as error:  # no modules, or a db used by something else
        raise ValueError(f"DataFormat bliss2: the Redis at {redact(device.RedisURL)} cannot "
                         f"hold blissdata 2 scans ({error})") from None
    except RedisError as error:  # blissdata connects at once: no store without Redis
        raise ValueError(f"DataFormat {device.DataFormat}: blissdata cannot connect to the Redis "
                         f"at {redact(device.RedisURL)} ({type(error).__name__}: {error}); check "
                         "that it runs and accepts RedisURL's user with the password of "
                         "RedisPasswordFile") from None
    if credentials is not None:
        for each in (store, watch_store):
            use_credentials(store_client(each), credentials)
    counter = None
    if device.SettingsRedisURL:
        settings = connect(device.SettingsRedisURL, db=0, socket_timeout=timeout,
                           socket_connect_timeout=timeout)
        counter = SharedCounter(settings, device.SettingsRedisURL, device.Session,
                                device.ScanSeries)
    return Bliss2Service(session, device.RedisURL, owner=device.get_name(), store=store,
                         watch_store=watch_store, block=block, end_timeout=device.EndTimeout,
                         recovery=device.RecoveryMode, on_change=on_change, names=NAMES,
                         saving=saving, counter=counter)

