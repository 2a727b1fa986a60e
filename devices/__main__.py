"""``SequenceManager <instance>`` / ``python -m tango_groups.devices <instance>``."""

import sys

from tango_groups.devices.sequence_manager import main as run_server


def main() -> None:
    # the server name is the class name, however this module was started (console script or -m)
    sys.exit(run_server(["SequenceManager", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
