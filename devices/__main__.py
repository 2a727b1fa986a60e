"""``SequenceManager <instance>`` / ``python -m tango_groups.devices <instance>``.

``kill -USR1 <pid>`` makes the server print the stack of every thread to stderr (what a server
that stopped answering waits for) and go on.
"""

import faulthandler
import signal
import sys

from tango import DevFailed
from tango.server import run

from tango_groups.devices.sequence_manager import SequenceManager


def run_server(args: list[str]) -> int:
    """Run the server with Tango's arguments ``args`` (server name first)."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        run((SequenceManager,), args=args)
    except DevFailed as error:
        print(error.args[0].desc)
        return 1
    return 0


def main() -> None:
    # the server name is the class name, however this module was started (console script or -m)
    sys.exit(run_server(["SequenceManager", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
