"""How a call attempt can end, in the words both engines write to result files.

An attempt ends with an HTTP-style status (200, 429, 500, 502, 503, 504; 0 when no answer
came) and an error word. The retry class of a failed attempt is the word of a retry policy's
``on`` list it falls under; the simulator and the live emulator retry by the same rule.
"""

from __future__ import annotations

__all__ = ["ERROR_WORDS", "retry_class"]

# "" = no error; the order is the simulator's compact integer coding, so append only
ERROR_WORDS = ("", "refused", "reset", "timeout", "rejected", "queue_timeout", "rate_limited",
               "error", "injected", "circuit_open", "unfinished", "client_timeout")


def retry_class(status: int, error: str) -> str | None:
    """The retry class (a word of ``retry.on``) of a failed attempt, or None if not retryable.

    A timeout (the caller's own, or one passed up by a callee) is class ``timeout`` only
    (``client_timeout`` is the client giving up: never retried by a service);
    status 0 is ``refused`` or ``reset``; 429 is ``429``; any other status >= 500 is ``5xx``.
    """
    if error == "timeout":
        return "timeout"
    if status == 0:
        return error if error in ("refused", "reset") else None
    if status == 429:
        return "429"
    return "5xx" if status >= 500 else None
