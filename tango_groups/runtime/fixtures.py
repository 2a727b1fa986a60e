"""Registering tango_groups' device servers in a Tango database, from dsconfig JSON.

The fixtures live in ``tango_groups.tango_db_fixtures`` (the ``tango_db_fixtures/`` directory of
the source tree, shipped as package data) in dsconfig's format: ``servers / Server / Instance /
Class / device / properties``, every property value a list of strings. ``sequence_manager.json``
registers the server ``SequenceManager/1`` with one device, ``tango_groups/sequence_manager/1``,
and the device properties whose defaults a beamline usually changes (``Session``, ``BasePath``).
``RedisURL`` is left out on purpose: without it the device's own default applies, and
``tango-groups serve`` / ``register`` set it to the Redis they are given. ``tango-groups
fixtures`` prints it (``--path``: where it is installed), so that an installed package loads it
into any database with::

    TANGO_HOST=host:10000 json2tango -w "$(tango-groups fixtures --path)"

``sequence_manager_config`` builds the same configuration for other instances, several devices
and overridden properties; ``register_devices`` writes it into a database where the devices may
already be registered (``tango-groups register``: their properties not given are kept);
``load_config`` writes a configuration with dsconfig's ``json2tango``
(run with this Python, ``-m dsconfig.json2tango``, so it is always the dsconfig installed next to
the project). json2tango exits with 0 when nothing had to change and 2 when it wrote; with
pytango-db it always writes at least one thing, as it deletes an empty device alias on every run.
On every write json2tango also saves the previous database content to ``dsconfig-*.json`` in
``TMPDIR``; ``load_config`` points ``TMPDIR`` at a directory it removes afterwards, so repeated
loads leave no files behind (run ``json2tango`` yourself to keep them).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import tango

__all__ = [
    "DEVICE_PREFIX",
    "SEQUENCE_MANAGER",
    "check_database",
    "device_names",
    "fixture_path",
    "load_config",
    "read_fixture",
    "register_devices",
    "registered_property",
    "sequence_manager_config",
]

SEQUENCE_MANAGER = "SequenceManager"  # the server (executable) name and the device class name
DEVICE_PREFIX = "tango_groups/sequence_manager/"
_FIXTURE = "sequence_manager.json"
_WRITTEN = 2  # json2tango's exit code after writing; 0 means "nothing to change"


def fixture_path(name: str = _FIXTURE) -> Path:
    """Where a fixture shipped in ``tango_groups.tango_db_fixtures`` is installed (a file: the
    package is installed from a wheel or a checkout, never zipped)."""
    return Path(str(resources.files("tango_groups.tango_db_fixtures").joinpath(name)))


def read_fixture(name: str = _FIXTURE) -> dict[str, Any]:
    """A fixture shipped in ``tango_groups.tango_db_fixtures``, as a dict."""
    return json.loads(fixture_path(name).read_text())


def device_names(instance: str = "1", devices: int = 1) -> list[str]:
    """Names of the ``devices`` SequenceManager devices of server instance ``instance``.

    The first is ``tango_groups/sequence_manager/<instance>`` whatever the count, the others
    ``tango_groups/sequence_manager/<instance>_<k>`` (k = 2...): names stay stable when devices are
    added, and two instances in one database never claim the same device.
    """
    if devices < 1:
        raise ValueError(f"a server needs at least one device, not {devices}")
    return [DEVICE_PREFIX + (instance if k == 1 else f"{instance}_{k}")
            for k in range(1, devices + 1)]


def sequence_manager_config(instance: str = "1", devices: int = 1,
                            properties: Mapping[str, object] | None = None) -> dict[str, Any]:
    """The dsconfig configuration of server ``SequenceManager/<instance>`` with ``devices``
    devices, each with the shipped fixture's properties updated by ``properties`` (a list is
    a multi-line property, anything else one line)."""
    shipped = read_fixture()["servers"][SEQUENCE_MANAGER]["1"][SEQUENCE_MANAGER]
    defaults = next(iter(shipped.values()))["properties"]
    merged = copy.deepcopy(defaults) | {
        name: [str(line) for line in value] if isinstance(value, list) else [str(value)]
        for name, value in (properties or {}).items()}
    return {"servers": {SEQUENCE_MANAGER: {instance: {SEQUENCE_MANAGER: {
        name: {"properties": copy.deepcopy(merged)} for name in device_names(instance, devices)
    }}}}}


def load_config(config: Mapping[str, Any], tango_host: str, update: bool = False,
                timeout: float = 60.0) -> int:
    """Write ``config`` (dsconfig format) into the database at ``tango_host`` with json2tango.

    With ``update`` nothing is removed (``json2tango -u``): devices and properties the database
    has and ``config`` does not are kept. Returns json2tango's exit code (0: nothing to change,
    2: written); any other outcome raises ``RuntimeError`` with json2tango's output.
    """
    command = [sys.executable, "-m", "dsconfig.json2tango", "--write", "--no-colors"]
    if update:
        command.append("--update")
    with tempfile.TemporaryDirectory(prefix="tango_groups_dsconfig_") as scratch:
        env = dict(os.environ, TANGO_HOST=tango_host, TMPDIR=scratch)
        try:
            result = subprocess.run(command, input=json.dumps(config), env=env, text=True,
                                    capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"json2tango did not finish within {timeout:g} s writing to the "
                               f"Tango database at {tango_host}: is that database answering?"
                               ) from None
    if result.returncode not in (0, _WRITTEN):
        output = (result.stdout + result.stderr).strip()
        raise RuntimeError(
            f"json2tango could not write the configuration to the Tango database at {tango_host} "
            f"(exit code {result.returncode}):\n{output}\n"
            "Check that TANGO_HOST names a running database and that the configuration is valid "
            "dsconfig JSON."
        )
    return result.returncode


def check_database(tango_host: str) -> None:
    """Raise ``RuntimeError`` saying what to do unless a Tango database answers at
    ``tango_host`` (host:port)."""
    host, _, port = tango_host.rpartition(":")
    if not host or not port.isdigit():
        raise RuntimeError(f"TANGO_HOST {tango_host!r} is not host:port")
    try:
        tango.Database(host, int(port)).get_info()
    except tango.DevFailed as error:
        raise RuntimeError(
            f"the Tango database at {tango_host} does not answer ({error.args[0].desc.strip()}): "
            "start it or fix --tango-host (tango-groups serve without --tango-host runs a "
            "private one)") from None


def _database(tango_host: str) -> tango.Database:
    host, _, port = tango_host.rpartition(":")
    return tango.Database(host, int(port))


def registered_property(tango_host: str, device: str, name: str) -> str | None:
    """The first line of property ``name`` of ``device`` in the database at ``tango_host``; None
    when the device does not have it (not registered, or the property not set)."""
    value = _database(tango_host).get_device_property(device, [name])[name]
    return value[0] if len(value) else None


def register_devices(tango_host: str, instance: str = "1", devices: int = 1,
                     properties: Mapping[str, str] | None = None
                     ) -> dict[str, dict[str, list[str]]]:
    """Register server ``SequenceManager/<instance>`` with ``devices`` devices in the database at
    ``tango_host`` (``load_config`` with ``update``: nothing else changes). A device gets
    ``properties``; for the others, a device already registered keeps the values it has, a new
    one gets the shipped fixture's (``tango-groups register`` and ``serve``: on a beamline a
    device's Session and BasePath change only when asked). Returns each device's properties as
    written."""
    config = sequence_manager_config(instance, devices)
    database = _database(tango_host)
    registered = config["servers"][SEQUENCE_MANAGER][instance][SEQUENCE_MANAGER]
    given = {name: [str(value)] for name, value in (properties or {}).items()}
    for name, device in registered.items():
        asked = sorted({"RedisURL", "DataFormat", *given, *device["properties"]})
        kept = database.get_device_property(name, asked)
        device["properties"] |= {key: list(value) for key, value in kept.items() if len(value)}
        device["properties"] |= given
    load_config(config, tango_host, update=True)
    return {name: device["properties"] for name, device in registered.items()}
