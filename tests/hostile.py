"""What a hostile or broken writer can put into a shared Redis, for tests to plant."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable


class _System:
    """Pickles as a call to ``os.system(command)``: what an attacker would put into Redis."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (self.command,)


def evil_pickle(command: str = "true") -> bytes:
    """A pickle that runs ``command`` when loaded with the default unpickler."""
    return pickle.dumps(_System(command))
