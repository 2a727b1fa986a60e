"""``tango-groups gui``: a Qt panel that follows a SequenceManager and drives its sequences.

The ``gui`` extra (``pip install tango_groups[gui]``: PyQt5, pyqtgraph, Taurus) provides Qt;
nothing here is imported by the rest of the product except ``cli``, lazily.

``events`` (the device's change events, marshalled to the Qt thread: no polling), ``scans``
(the table of the sequence's scans, their state and points read from Redis), ``plots`` (one live
curve per channel attribute), ``panel`` (the window: state, sequence, scans, channels, commands
and their refusals in words) and ``app`` (the ``QApplication`` and ``run``).
"""
