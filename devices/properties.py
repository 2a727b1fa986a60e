"""The properties of the SequenceManager device, declared on a base class it inherits from
(pytango's ``DeviceMeta`` collects the Tango objects of base classes): what each configures,
its default, and the documentation the device reference (docs/device.rst) is generated from.
``configuration`` reads them to build the service.
"""

from __future__ import annotations

from tango.server import Device, device_property

from tango_groups.devices.configuration import DEFAULT_LEASE_TIME, MAX_REDIS_TIMEOUT

__all__ = ["SequenceManagerProperties"]

# the docs of the properties of Bliss 2's scan numbers
SETTINGS_REDIS_URL = (
    "DataFormat bliss2 and both: Bliss's settings Redis (Beacon's, port 6379; db 0 unless the URL "
    "names one; a password goes in the URL), whose {session}:scan_counter Bliss 2 numbers its "
    "scans with: sequences and groups take their numbers there too, so that none has the number "
    "of a Bliss scan. Empty: numbers are counted in RedisURL, past the session's newest scan at "
    "each Start. Start refuses (SequenceManager_RedisUnavailable) while it does not answer.")
SCAN_SERIES = (
    "With SettingsRedisURL: the series Bliss's counter is in (its 'name' field). Empty: go on "
    "with the series the counter holds (no_data_policy when there is none yet). A name (Bliss's "
    "current data path, or no_data_policy): Bliss's own rule, count on when it is the counter's "
    "series, else start it again at 1, which Bliss does too at its next scan of another series.")


class SequenceManagerProperties(Device):
    """The device properties of ``SequenceManager`` (see the module docstring)."""

    RedisURL = device_property(
        dtype=str, default_value="redis://127.0.0.1:6379",
        doc="Data Redis, redis://[[user][:password]@]host:port[/db] (rediss:// for TLS, with "
            "?ssl_ca_certs=/path/ca.crt). Data nodes go to logical db 1 unless the URL names a "
            "db (Bliss's data Redis: the Beacon host, port 25002).")
    RedisPasswordFile = device_property(
        dtype=str, default_value="",
        doc="File whose first line is the Redis password, readable by the server's user only: "
            "keeps the password out of the Tango database. Used when RedisURL names none; read "
            "again at each new connection (a fixed or rotated password needs no Init).")
    SettingsRedisURL = device_property(dtype=str, default_value="", doc=SETTINGS_REDIS_URL)
    ScanSeries = device_property(dtype=str, default_value="", doc=SCAN_SERIES)
    Session = device_property(
        dtype=str, default_value="tango_groups",
        doc="Session name: the root node of everything this device writes (no ':').")
    BasePath = device_property(
        dtype=str, default_value="/tmp/scans",
        doc="Scan-saving path; its directories become containers below the session, as in Bliss "
            "(/tmp/scans -> <session>:tmp:scans). Scan numbers are counted in that container.")
    SavingTemplate = device_property(
        dtype=str, default_value="{session}",
        doc="Bliss 2: directory of the HDF5 files below BasePath, as Bliss's SCAN_SAVING.template "
            "({session}, {scan_name}, {scan_number}, {date}, {user_name}).")
    DataFilename = device_property(
        dtype=str, default_value="data",
        doc="Bliss 2: HDF5 file name (+ .h5) as SCAN_SAVING.data_filename, blisswriter saves "
            "sequences and groups in BasePath/SavingTemplate/DataFilename.h5; blank: no file.")
    EndTimeout = device_property(
        dtype=float, default_value=1.5,
        doc="Seconds End waits for scans added by number that have not started yet. End takes "
            "up to EndTimeout + RedisTimeout: keep that below the clients' Tango timeout (3 s).")
    DataExpiration = device_property(
        dtype=int, default_value=600,
        doc="Seconds channel data and device nodes live in Redis after their scan ends (0: "
            "forever). Bliss's default is 600.")
    ParentExpiration = device_property(
        dtype=int, default_value=86400,
        doc="Seconds scan nodes and their containers live after the scan ends (0: forever). "
            "Bliss's default is 86400.")
    RedisTimeout = device_property(
        dtype=float, default_value=1.0,
        doc=f"Seconds a Redis request may take before the command fails with "
            f"SequenceManager_RedisUnavailable and the device reports FAULT (at most "
            f"{MAX_REDIS_TIMEOUT}: a client must get the device's answer before its own 3 s "
            "timeout).")
    HealthCheckPeriod = device_property(
        dtype=float, default_value=1.0,
        doc="Seconds between two checks of the data Redis (FAULT when it does not answer, or "
            "when it lost the running sequence). While it fails, commands are refused at once "
            "and the device recovers within this period once it answers.")
    LeaseTime = device_property(
        dtype=float, default_value=0.0,
        doc=f"Seconds the device's lease lasts unrenewed (0: {DEFAULT_LEASE_TIME:g}, or 2 x "
            "HealthCheckPeriod + RedisTimeout, the least, if longer). A second server of the "
            "device stands by until it expired; the first, woken up, writes nothing (LeaseLost).")
    Channels = device_property(
        dtype=(str,), default_value=["sum"],
        doc="Custom channels that get a Tango attribute of their own, one per line: a name "
            "(float64 points) or a JSON object as in Start ({\"name\", \"dtype\", \"shape\", "
            "\"unit\"}). The attributes are created when the server starts (cppTango does not "
            "protect attributes added later against clients reading configurations): a change "
            "takes effect at the next server start. Start may use other channels too: they "
            "are written to Redis, without a Tango attribute.")
    ChannelWindow = device_property(
        dtype=int, default_value=10000,
        doc="Points a channel attribute holds and its events carry: the last ones of the "
            "sequence (at most 16 MiB of data per channel). Every point stays in Redis.")
    DataFormat = device_property(
        dtype=str, default_value="bliss1",
        doc="Data model the sequences are written in: 'bliss1' (Bliss 1.x data nodes, read by "
            "blissdata 0.3) or 'bliss2' (blissdata 2.x scans: needs the [bliss2] extra and a "
            "Redis with RedisJSON and RediSearch; Start returns the esrf:scan: key, AddScan "
            "takes keys or numbers) or 'both' (one sequence in each model, each referencing the "
            "scans of its own generation; Start returns the 1.x db_name, ScanKey the key).")
    RecoveryMode = device_property(
        dtype=str, default_value="close",
        doc="What the device does at start-up with a sequence a previous run left open (a "
            "crash, a kill): 'close' ends it as KILLED, 'resume' takes it over (RUNNING).")
