"""``python -m tango_groups.cli``: the ``tango-groups`` command."""

import sys

from .commands import main

sys.exit(main())
