"""Tango device servers of tango_groups: the SequenceManager (a thin layer over
tango_groups.service)."""
