"""The Bliss 1.x data-node wire format: key layout (``keys``, explained there once), encodings,
the writers (``writer``, ``channel``), the Lua scripts they run, the reader (``node`` and the
``node_*`` modules, ``streams``, ``events``) and the lookup of scans by name or number.

Nothing here imports ``tango_groups.bliss2``; what both models share is in ``tango_groups.data``.
"""
