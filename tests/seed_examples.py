"""The seed page's examples (shared/seed/groups_and_sequences.md) as written, one function each.

Run in a bliss1 session by tests/unit/test_seed_examples.py and in a bliss2 one by
tests/bliss2/test_session_bliss2.py: the same code writes either model. Only the imports differ
from the page, and ``numpy.float`` (gone from numpy >= 1.24) is ``float``.
"""

from __future__ import annotations

from typing import Any

from tango_groups.scanning.chain import AcquisitionChannel
from tango_groups.scanning.group import Group, Sequence
from tango_groups.scanning.scan import Scan
from tango_groups.scanning.simulation import loopscan


def group_of_scans(diode: Any) -> tuple[Group, Scan, Scan]:
    s1 = loopscan(3, .1, diode)
    s2 = loopscan(3, .2, diode)
    return Group(s1, s2), s1, s2


def sequence_with_add_and_add_and_run(diode: Any) -> tuple[Sequence, Scan, Scan, Scan]:
    seq = Sequence()
    with seq.sequence_context() as scan_seq:
        s1 = loopscan(5, .1, diode, run=False)
        scan_seq.add(s1)
        s1.run()

        # do something here ... move motors, open/close shutter

        s2 = loopscan(3, .2, diode, run=False)
        scan_seq.add_and_run(s2)

        # do more things

        s3 = loopscan(3, .2, diode)
        scan_seq.add(s3)
    return seq, s1, s2, s3


def sequence_with_custom_channels(diode: Any) -> tuple[Sequence, Scan, Scan, Any]:
    seq = Sequence()
    seq.add_custom_channel(AcquisitionChannel('mychannel', float, ()))
    seq.add_custom_channel(AcquisitionChannel('sum', float, ()))
    with seq.sequence_context() as scan_seq:
        s1 = loopscan(5, .1, diode, run=False)
        s2 = loopscan(5, .1, diode, run=False)
        scan_seq.add_and_run(s1)
        scan_seq.add_and_run(s2)

        seq.custom_channels['mychannel'].emit([1.1, 2.2, 3.3])

        my_sum = s1.get_data()[diode] + s2.get_data()[diode]
        seq.custom_channels['sum'].emit(my_sum)
    return seq, s1, s2, my_sum
