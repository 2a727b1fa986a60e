"""The SequenceManager's Tango-free core: one live sequence at a time, driven by commands.

``requests`` parses and validates what clients send (nothing is written before a request is
known to be acceptable), ``states`` is the state model (which command each phase accepts, and
the transitions), ``manager`` runs sequences through ``tango_groups.scanning`` and reports every
change through one callback, and ``watchers`` holds its background threads (pending scans, the
health of the Redis connection). The Tango device (``tango_groups.devices``) is a thin layer
over ``manager.Manager``.
"""
