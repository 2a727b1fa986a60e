"""A Bliss 2 group: a sequence scan of existing scans, written and closed at once
(``write_group``). A group whose writing fails is closed again from a fresh load (its stream
writers may be gone), so that no reader waits for it."""

from __future__ import annotations

import logging
from typing import Any

from blissdata.exceptions import ScanNotFoundError
from blissdata.redis_engine.store import DataStore

from ..data.connection import RedisError
from .h5maps import Entry
from .sequence import SequenceScan
from .store import close_left_open

__all__ = ["write_group"]

logger = logging.getLogger(__name__)


def write_group(store: DataStore, session: str, number: int,
                members: list[tuple[str, int, Entry | None]], title: str | None,
                scan_info: dict[str, Any], path: str | None = None) -> str:
    """The group (scan ``number`` of ``session``) of ``members`` (key, number, the entry it is
    saved in), saved in ``path`` (with a link to each saved member); returns its key. Redis
    errors are raised as they are."""
    group = SequenceScan(store, session=session, number=number, name="group_of_scans",
                         title=title or "group_of_scans", scan_info=scan_info, path=path)
    try:
        for key, scan_number, saved_in in members:
            group.add_scan(key, scan_number, saved_in)
        group.end()
    except RedisError:
        try:
            close_left_open(store, group.key)
        except (RedisError, ScanNotFoundError) as error:
            logger.warning("group %s left open: %s", group.key, error)
        raise
    return group.key
