"""What both data models share: the connection to the data Redis (and its probes), channel
declarations (``ChannelSpec``), scan counters, the running record and the device lease.

The wire formats are peers beside it: ``tango_groups.bliss1`` (1.x data nodes) and
``tango_groups.bliss2`` (blissdata 2.x); neither imports the other.
"""
