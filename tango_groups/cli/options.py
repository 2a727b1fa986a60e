"""What several ``tango-groups`` subcommands share: the Redis and session options, the data format
option, and the checks that turn a missing Redis, a silent one or a Redis that cannot hold Bliss 2
data into an error saying what to do (``commands`` and ``listen``).

Data formats: ``bliss1`` (Bliss 1.x data nodes, ``tango_groups.bliss1``: db 1 of the data Redis
unless the URL names one), ``bliss2`` (the blissdata 2 model, ``tango_groups.bliss2``: db 0 of the
same server, the db ``DataStore(url)`` opens for a URL that names none), ``both``. So one URL
without a db, ``redis://host:port``, serves both generations as it is.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..data.connection import RedisError, ping, redact
from ..formats import DataFormat

__all__ = ["DEFAULT_BASE_PATH", "DEFAULT_SESSION", "REDIS_URL_VARIABLE",
           "add_data_format_option", "add_redis_options", "bliss2_store", "check_redis",
           "required_redis_url"]

DEFAULT_SESSION = "tango_groups"  # the SequenceManager's default Session property
DEFAULT_BASE_PATH = "/tmp/scans"  # its default BasePath property
REDIS_URL_VARIABLE = "TANGO_GROUPS_REDIS_URL"
SERVED_REDIS_URL = "REDIS_URL"  # the name serve prints it under: read too, after the first


def add_redis_options(parser: argparse.ArgumentParser, session_default: str | None) -> None:
    parser.add_argument(
        "--redis-url",
        default=os.environ.get(REDIS_URL_VARIABLE) or os.environ.get(SERVED_REDIS_URL),
        help=f"the data Redis, redis://host:port[/db] (default: ${REDIS_URL_VARIABLE}, else "
             f"${SERVED_REDIS_URL} as serve prints it; Bliss 1.x "
             "data nodes are in db 1 and blissdata 2 scans in db 0 unless the URL names a db)")
    parser.add_argument(
        "--session", default=session_default,
        help=f"the session name (default: {DEFAULT_SESSION}, the SequenceManager's default)")


def add_data_format_option(parser: argparse.ArgumentParser, what: str,
                           choices: tuple[str, ...] = tuple(each.value for each in DataFormat),
                           default: str | None = DataFormat.BLISS1.value) -> None:
    """``--data-format`` with ``choices`` (``both`` only where it works)."""
    both = ", or both" if DataFormat.BOTH in choices else ""
    parser.add_argument(
        "--data-format", choices=choices, default=default,
        help=f"{what}: bliss1 (Bliss 1.x data nodes), bliss2 (the Bliss 2 model of blissdata 2, "
             f"the bliss2 extra){both}")


def required_redis_url(args: argparse.Namespace) -> str:
    if not args.redis_url:
        raise RuntimeError(f"no Redis: give --redis-url redis://host:port or set "
                           f"{REDIS_URL_VARIABLE} or {SERVED_REDIS_URL} (tango-groups serve "
                           f"prints {SERVED_REDIS_URL}=...)")
    return args.redis_url


def check_redis(url: str) -> None:
    try:
        ping(url)
    except RedisError as error:
        raise RuntimeError(f"the Redis at {redact(url)} does not answer ({error}): start it or "
                           "fix the URL") from None


def bliss2_store(url: str, set_up: bool = False) -> Any:
    """blissdata 2's ``DataStore(url)`` (with ``set_up``, ``tango_groups.bliss2.data_store``: an
    empty db is set up first). ``RuntimeError`` saying what is missing otherwise: blissdata 2
    not installed, a server without RedisJSON and RediSearch, a db not set up or not empty."""
    try:
        from ..bliss2 import data_store
    except ImportError as error:
        raise RuntimeError(f"Bliss 2 data needs blissdata 2.x ({error}): pip install "
                           "'tango_groups[bliss2]'") from None
    try:
        return data_store(url, set_up=set_up)
    except RuntimeError as error:  # what blissdata raises; its text may hold the password
        raise RuntimeError(f"the Redis at {redact(url)} does not hold Bliss 2 data: "
                           f"{str(error).replace(url, redact(url))}") from None
