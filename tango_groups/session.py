"""``Session``: where scans go (data Redis, session name, scan-saving path) and the current session.

A Bliss session knows its data Redis and its ScanSaving; ours is the same, minus Beacon::

    session = Session("demo", redis_url="redis://127.0.0.1:6380", base_path="/tmp/scans").setup()
    tango_groups.current_session.name      # "demo"
    diode = session.config.get("diode")   # a simulated counter

Scans are written under the scan-saving container (``demo:tmp:scans`` above), created on demand.
``session.config`` names the objects scans count with; they register themselves there
(``Config.register``) when their module is imported: ``tango_groups.scanning.simulation`` registers
its simulated counters, so the session knows nothing of them.
"""

from __future__ import annotations

import getpass
from typing import Any, ClassVar

from .data import keys
from .data.connection import Redis, connect
from .data.writer import DataWriter, Expiration

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
    """A named session writing to the data Redis at ``redis_url`` (logical db 1 unless named)."""

    def __init__(
        self,
        name: str,
        redis_url: str = "redis://127.0.0.1:6379",
        base_path: str = "/tmp/scans",
        expiration: Expiration | None = None,
        client: Redis | None = None,
    ) -> None:
        keys.check_local_name(name)
        self.name = name
        self.base_path = base_path
        self.client = client if client is not None else connect(redis_url)
        self.writer = DataWriter(self.client, expiration or Expiration())
        self.config = Config()
        self.user_name = getpass.getuser()

    @property
    def scan_saving_db_name(self) -> str:
        """db_name of the container scans are written to (no Redis access: for reading)."""
        return ":".join(keys.scan_saving_parts(self.name, self.base_path))

    @property
    def scan_saving_parent(self) -> str:
        """``scan_saving_db_name``, its containers created when missing (one round trip)."""
        return self.writer.ensure_containers(keys.scan_saving_parts(self.name, self.base_path))

    def setup(self) -> Session:
        """Make this the current session (``tango_groups.current_session``) and the readers'
        default."""
        global _current
        from .data import node

        _current = self
        node.set_default_connection(self.client)
        return self

    def close(self) -> None:
        global _current
        if _current is self:
            _current = None
        self.client.close()

    def __repr__(self) -> str:
        return f"Session({self.name!r}, base_path={self.base_path!r})"


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
