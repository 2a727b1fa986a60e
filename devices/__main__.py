"""``SequenceManager <instance>`` / ``python -m tango_groups.devices <instance>``.

gevent's monkey patching comes first, before Redis, sockets or Tango are imported: the device runs
in gevent green mode and its Redis readers block in greenlets. Threads stay unpatched (omniORB's
threads are real threads).
"""

from gevent import monkey

monkey.patch_all(thread=False)

import sys

from tango_groups.devices.sequence_manager import main as run_server


def main() -> None:
    # the server name is the class name, however this module was started (console script or -m)
    sys.exit(run_server(["SequenceManager", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
