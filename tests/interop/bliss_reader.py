"""blissdata 0.3.1 as an independent reader, run as a subprocess (its gevent stays out of pytest).

    python bliss_reader.py PORT snapshot SESSION      -> one JSON document on stdout
    python bliss_reader.py PORT follow SESSION TITLE  -> one JSON line per event of a live
                                                         session walk_events(wait=True), until the
                                                         END_SCAN of the sequence titled TITLE

``follow`` prints ``READY`` once subscribed, so the writer can start after it.
"""

from gevent import monkey

monkey.patch_all(thread=False)

import json
import sys

from blissdata import client
from blissdata.data.node import get_session_node
from blissdata.redis.manager import RedisAddress, RedisConnectionManager


def plain(value):
    """JSON-able form of what blissdata returns."""
    if hasattr(value, "db_name"):
        return {"node": value.db_name, "type": value.type}
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def snapshot(session: str) -> dict:
    root = get_session_node(session)
    result = {
        "scans": [{"db_name": n.db_name, "type": n.type, "info": plain(n.info.get_all())}
                  for n in root.walk(include_filter=["scan_group", "scan"], wait=False)],
        "groups": {},
    }
    for group in root.walk(include_filter="scan_group", wait=False):
        events = [[e.type.name, e.node.db_name] for e in group.walk_events(wait=False)]
        channels = {}
        for node in group.walk(include_filter=["channel", "node_ref_channel"], wait=False):
            channels[node.db_name] = {"len": len(node), "data": plain(node.get(0, -1)),
                                      "info": plain(node.info.get_all())}
        result["groups"][group.db_name] = {"events": events, "channels": channels,
                                           "nodes": [n.db_name for n in group.walk(wait=False)]}
    return result


def follow(session: str, title: str) -> None:
    root = get_session_node(session)
    events = root.walk_events(wait=True)
    print("READY", flush=True)
    for event in events:
        line = {"event": event.type.name, "db_name": event.node.db_name, "type": event.node.type}
        if event.type.name == "NEW_DATA":
            line["first_index"] = event.data.first_index
            line["data"] = plain(event.data.data)
        print(json.dumps(line), flush=True)
        if (event.type.name == "END_SCAN" and event.node.type == "scan_group"
                and event.node.info.get("title") == title):
            return


def main() -> None:
    port, command, session = sys.argv[1], sys.argv[2], sys.argv[3]
    address = RedisAddress.factory(f"127.0.0.1:{port}")
    manager = RedisConnectionManager({0: address, 1: address})
    client.set_default_redis_connection_manager_callback(lambda: manager)
    if command == "snapshot":
        print(json.dumps(snapshot(session)))
    elif command == "follow":
        follow(session, sys.argv[4])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
