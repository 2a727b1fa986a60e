"""What the service says, in words a person can act on: when Redis fails (unreachable,
refusing the credentials, showing a certificate that is not verified: ``redis_failure``), when
End leaves scans behind (``scans_never_started``), when a pending scan number is far beyond the
counter (``far_beyond``), when a file is asked of the Bliss 1.x model (``NO_FILE``). URLs come
redacted; no text names a password.

The settings a message tells to change are named as the owner calls them (``Names``: the Tango
device gives its property names), so that no name of Tango lives in the service.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from ..data.connection import RedisAuthenticationError, RedisTimeoutError
from .reasons import ManagerError, Reason

__all__ = ["FAR_BEYOND", "NEUTRAL", "NO_FILE", "Names", "far_beyond", "redis_failure",
           "scans_never_started"]

FAR_BEYOND = 100  # a pending number this far beyond the counter is named in the status
NO_FILE = ("the Bliss 1.x data model saves no HDF5 file (blisswriter saves Bliss 2 scans): leave "
           "\"path\" out, or write the Bliss 2 model")


@dataclasses.dataclass(frozen=True)
class Names:
    """How the owner of a service calls the settings and actions a message may name."""

    redis_url: str = "the Redis URL"
    password_file: str = "the password file"
    settings_redis_url: str = "the settings Redis URL"
    health_period: str = "the health-check period"
    end_timeout: str = "the end timeout"
    reopen: str = "reopen the service"  # what makes it connect anew


NEUTRAL = Names()  # a service's names when its owner gives none


def redis_failure(url: str, error: Exception, names: Names) -> str:
    """The status while Redis at ``url`` fails with ``error``, and what to do about it."""
    if isinstance(error, RedisAuthenticationError):
        return _refused_credentials(url, error, names)
    if "CERTIFICATE_VERIFY_FAILED" in str(error):  # OpenSSL's reason
        return _untrusted_certificate(url, error, names)
    return (f"Redis at {url} is unreachable ({type(error).__name__}: {error}). "
            + ("A write that timed out may still land: the device re-reads Redis before "
               "writing again, so repeating the command is safe. "
               if isinstance(error, RedisTimeoutError) else "")
            + f"Check that the data Redis runs and that {names.redis_url} is right; the "
              "device recovers by itself once it answers.")


def far_beyond(numbers: dict[int, int], where: str) -> str:
    """The note on pending ``numbers`` far beyond the last number (the values) of ``where``."""
    return (f" Scan {', '.join(map(str, numbers))} is far beyond the last scan number of {where} "
            f"({max(numbers.values())}): a typo? It stays pending until a scan of that number "
            "starts.")


def scans_never_started(sequence: str, state: str, numbers: list[int], timeout: float,
                        names: Names) -> ManagerError:
    """End's answer when scans added by number did not start within the end timeout: the
    sequence is ended (``state``) without them."""
    return ManagerError(Reason.SCANS_NOT_FINISHED,
                        f"sequence {sequence} ended {state} without scans {numbers}: they did "
                        f"not start within {names.end_timeout} ({timeout:g} s); add them to "
                        f"another sequence once they run, or raise {names.end_timeout}")


def _refused_credentials(url: str, error: Exception, names: Names) -> str:
    """The status while Redis refuses the credentials (each new connection reads the password
    file again: fixing it is enough). ``url`` is redacted; redis-py's text names no password."""
    user = urlsplit(url).username or "default"
    return (f"Redis at {url} refused the credentials of user {user!r} ({error}). Fix the "
            f"password in {names.password_file} (its first line) or the user in "
            f"{names.redis_url}: the device retries every {names.health_period} and recovers by "
            "itself once Redis accepts them.")


def _untrusted_certificate(url: str, error: Exception, names: Names) -> str:
    """The status while TLS verification of Redis's certificate fails (``url`` is redacted)."""
    return (f"Redis at {url} presented a TLS certificate that was not verified ({error}). Check "
            f"that ssl_ca_certs in {names.redis_url} names the file of the CA that signed the "
            f"server's certificate and that the certificate names the host of {names.redis_url}. "
            f"The device retries every {names.health_period} (each connection reads the CA file "
            f"again) and recovers by itself once the certificate is verified; a changed "
            f"{names.redis_url} needs to {names.reopen}.")
