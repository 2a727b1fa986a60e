"""What the status says, in words a person can act on, when something the service depends on
fails: Redis unreachable, refusing the credentials, or showing a certificate that is not
verified (``redis_failure``), and a pending scan number far beyond the session's counter
(``far_beyond``). URLs come redacted; no text names a password.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..data.connection import RedisAuthenticationError, RedisTimeoutError

__all__ = ["FAR_BEYOND", "far_beyond", "redis_failure"]

FAR_BEYOND = 100  # a pending number this far beyond the counter is named in the status


def redis_failure(url: str, error: Exception) -> str:
    """The status while Redis at ``url`` fails with ``error``, and what to do about it."""
    if isinstance(error, RedisAuthenticationError):
        return _refused_credentials(url, error)
    if "CERTIFICATE_VERIFY_FAILED" in str(error):  # OpenSSL's reason
        return _untrusted_certificate(url, error)
    return (f"Redis at {url} is unreachable ({type(error).__name__}: {error}). "
            + ("A write that timed out may still land: the device re-reads Redis before "
               "writing again, so repeating the command is safe. "
               if isinstance(error, RedisTimeoutError) else "")
            + "Check that the data Redis runs and that the RedisURL property is right; the "
              "device recovers by itself once it answers.")


def far_beyond(numbers: dict[int, int], where: str) -> str:
    """The note on pending ``numbers`` far beyond the last number (the values) of ``where``."""
    return (f" Scan {', '.join(map(str, numbers))} is far beyond the last scan number of {where} "
            f"({max(numbers.values())}): a typo? It stays pending until a scan of that number "
            "starts.")


def _refused_credentials(url: str, error: Exception) -> str:
    """The status while Redis refuses the credentials (each new connection reads the password
    file again: fixing it is enough). ``url`` is redacted; redis-py's text names no password."""
    user = urlsplit(url).username or "default"
    return (f"Redis at {url} refused the credentials of user {user!r} ({error}). Fix the "
            "password in RedisPasswordFile (its first line) or the user in RedisURL: the device "
            "retries every HealthCheckPeriod and recovers by itself once Redis accepts them.")


def _untrusted_certificate(url: str, error: Exception) -> str:
    """The status while TLS verification of Redis's certificate fails (``url`` is redacted)."""
    return (f"Redis at {url} presented a TLS certificate that was not verified ({error}). Check "
            "that ssl_ca_certs in RedisURL names the file of the CA that signed the server's "
            "certificate and that the certificate names the host of RedisURL. The device retries "
            "every HealthCheckPeriod (each connection reads the CA file again) and recovers by "
            "itself once the certificate is verified; a changed RedisURL needs Init.")
