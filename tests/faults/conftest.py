"""Fixtures of the fault suite and the fuzz (see ``sequence_server`` for the stack).

* ``tango_db``: one embedded Tango database for the whole test session;
* ``sequence_server(**properties)``: a started ``SequenceServer`` (its own Redis, instance and
  session), stopped with its Redis at the end of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sequence_server import SequenceServer

from tango_groups.runtime.tango_db import TangoDatabaseServer


@pytest.fixture(scope="session")
def tango_db() -> Iterator[TangoDatabaseServer]:
    with TangoDatabaseServer() as server:
        yield server


@pytest.fixture
def sequence_server(tango_db: TangoDatabaseServer
                    ) -> Iterator[Callable[..., SequenceServer]]:
    """``sequence_server(**properties)``: a started SequenceServer, closed after the test."""
    servers: list[SequenceServer] = []

    def start(**properties: object) -> SequenceServer:
        server = SequenceServer(tango_db.tango_host, **properties)
        servers.append(server)
        return server.start()

    yield start
    for server in reversed(servers):
        server.close()
