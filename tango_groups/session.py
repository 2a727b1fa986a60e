"""``Session``: where scans go (data Redis, session name, scan-saving path) and the current session.

A Bliss session knows its data Redis and its ScanSaving; ours is the same, minus Beacon::

    session = Session("demo", redis_url="redis://127.0.0.1:6380", base_path="/tmp/scans").setup()
    tango_groups.current_session.name      # "demo"
    diode = session.config.get("diode")   # a simulated counter

Scans are written under the scan-saving container (``demo:tmp:scans`` above), created on demand
(``session.model.scan_saving_parent``).

The data model is the session's choice; the scans, sequences and groups of
``tango_groups.scanning`` follow the same rules in both::

    Session("demo", redis_url=url)                          # "bliss1" (default): 1.x data nodes
    Session("demo", redis_url=url, data_format="bliss2")    # the Bliss 2 model, blissdata 2.x

``session.model`` is that model, the ``tango_groups.scanning.model.DataModel`` scans, sequences
and groups write through (``bliss1.model.Bliss1Model``, whose ``writer`` is the 1.x
``DataWriter``; or ``bliss2.writer.Bliss2Writer``); this is the one place it is chosen.
``bliss2`` writes through blissdata 2.x (the ``[bliss2]`` extra, imported only then): ``redis_url``
is what ``blissdata.redis_engine.store.DataStore(url)`` takes as is (a Redis >= 7.1 with RedisJSON
and RediSearch); scans get numbers from the session's counter in that database; ``scan.key`` is
the ``esrf:scan:<ULID>`` key blissdata's readers load.
``session.config`` names the objects scans count with; they register themselves there
(``Config.register``) when their module is imported: ``tango_groups.scanning.simulation`` registers
its simulated counters, so the session knows nothing of them.
"""

from __future__ import annotations

import getpass
from typing import Any, ClassVar

from .bliss1 import keys
from .bliss1.model import Bliss1Model
from .bliss1.writer import Expiration
from .data.connection import Redis, connect
from .formats import SESSION_FORMATS
from .scanning.model import DataModel

__all__ = ["Config", "Session", "current_session", "get_current_session"]


_current: Session | None = None


class Config:
    """The session's objects by name (Bliss's ``config.get``), as their modules registered them."""

    _objects: ClassVar[dict[str, Any]] = {}  # every session names the same objects

    @classmethod
    def register(cls, **objects: Any) -> None:
        """Make each object known by its keyword to every session's ``config.get``."""
        cls._objects.update(objects)

    def get(self, name: str) -> Any:
        try:
            return self._objects[name]
        except KeyError:
            raise KeyError(
                f"no object {name!r} in the session configuration; known: {sorted(self._objects)}"
            ) from None


class Session:
    """A named session writing to the data Redis at ``redis_url`` in the ``data_format`` model.

    ``bliss1``: 1.x data nodes in logical db 1 unless the URL names one; ``bliss2``: blissdata 2
    scans in the database the URL names (db 0 unless named), as ``DataStore(url)`` reads them."""

    def __init__(
        self,
        name: str,
        redis_url: str = "redis://127.0.0.1:6379",
        base_path: str = "/tmp/scans",
        expiration: Expiration | None = None,
        client: Redis | None = None,
        data_format: str = "bliss1",
    ) -> None:
        keys.check_local_name(name)
        if data_format not in SESSION_FORMATS:
            raise ValueError(f"data_format must be one of {[str(f) for f in SESSION_FORMATS]}, "
                             f"not {data_format!r}")
        self.name = name
        self.base_path = base_path
        self.data_format = data_format
        bliss2 = data_format == "bliss2"
        if client is None:
            client = connect(redis_url, **({"db": 0} if bliss2 else {}))
        self.client = client
        self.model: DataModel  # what tango_groups.scanning writes and references scans through
        if bliss2:
            from .bliss2.writer import Bliss2Writer  # blissdata 2.x: only a bliss2 session

            self.model = Bliss2Writer(redis_url, name)
        else:
            self.model = Bliss1Model(client, name, base_path, expiration)
        self.config = Config()
        self.user_name = getpass.getuser()

    @property
    def scan_saving_db_name(self) -> str:
        """db_name of the container scans are written to (no Redis access: for reading)."""
        return ":".join(keys.scan_saving_parts(self.name, self.base_path))

    def setup(self) -> Session:
        """Make this the current session (``tango_groups.current_session``) and the readers'
        default."""
        global _current
        from .bliss1 import node

        _current = self
        node.set_default_connection(self.client)
        return self

    def close(self) -> None:
        global _current
        if _current is self:
            _current = None
        self.client.close()

    def __repr__(self) -> str:
        return (f"Session({self.name!r}, base_path={self.base_path!r}, "
                f"data_format={self.data_format!r})")


def get_current_session() -> Session:
    if _current is None:
        raise RuntimeError(
            "no current session: create one with Session(name, redis_url=...).setup()"
        )
    return _current


class _CurrentSession:
    """Stands for whichever session is current, like ``bliss.current_session``."""

    def __getattr__(self, attribute: str):
        return getattr(get_current_session(), attribute)

    def __repr__(self) -> str:
        return repr(_current) if _current is not None else "<no current session>"


current_session = _CurrentSession()
