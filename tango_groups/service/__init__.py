"""The SequenceManager's Tango-free core: sequence services, one per data model, side by side.

``protocol`` says what a sequence service is (``SequenceService``: start, add_scan, emit, end,
abort, create_group, and the typed ``notifications`` it sends); ``bliss1`` (Bliss 1.x data nodes)
and ``bliss2`` (blissdata 2.x scans) implement it over ``core``, what they share (phases, locking,
failures and re-reads, the running record, the health check; the idempotent ``retries``, the lease
of ``lease_guard``, the texts of ``messages``); ``both`` composes the two through the interface.
``requests`` parses and checks what clients send (nothing is written before a request is known to be
acceptable), ``reasons`` names why a request is refused, ``states`` is the state model and
``watchers`` the periodic thread. The Tango device (``tango_groups.devices``) is a thin layer over a
``SequenceService``.
"""
