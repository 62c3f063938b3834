"""The outcome codes of a call attempt: an HTTP-style status and a short error word.

Error words are stored as small integers while the simulation runs and written as text.
"""

from __future__ import annotations

__all__ = [
    "ERRORS", "OK", "E_REFUSED", "E_RESET", "E_TIMEOUT", "E_REJECTED", "E_QUEUE_TIMEOUT",
    "E_RATE_LIMITED", "E_ERROR", "E_INJECTED", "E_CIRCUIT_OPEN", "E_UNFINISHED", "retry_class",
]

ERRORS = ("", "refused", "reset", "timeout", "rejected", "queue_timeout", "rate_limited",
          "error", "injected", "circuit_open", "unfinished")
(OK, E_REFUSED, E_RESET, E_TIMEOUT, E_REJECTED, E_QUEUE_TIMEOUT, E_RATE_LIMITED, E_ERROR,
 E_INJECTED, E_CIRCUIT_OPEN, E_UNFINISHED) = range(len(ERRORS))


def retry_class(status: int, error: int) -> str | None:
    """The retry class (a word of ``retry.on``) of a failed attempt, or None if not retryable.

    A timeout (the caller's own, or one passed up by a callee) is class ``timeout`` only;
    status 0 is ``refused`` or ``reset``; 429 is ``429``; any other status >= 500 is ``5xx``.
    """
    if error == E_TIMEOUT:
        return "timeout"
    if status == 0:
        return "refused" if error == E_REFUSED else ("reset" if error == E_RESET else None)
    if status == 429:
        return "429"
    if status >= 500:
        return "5xx"
    return None
