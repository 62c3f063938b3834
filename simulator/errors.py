"""The outcome codes of a call attempt: an HTTP-style status and a short error word.

Error words (``topologies.outcomes``) are stored as small integers while the simulation
runs and written as text.
"""

from __future__ import annotations

from topologies.outcomes import ERROR_WORDS
from topologies.outcomes import retry_class as _retry_class

__all__ = [
    "ERRORS", "OK", "E_REFUSED", "E_RESET", "E_TIMEOUT", "E_REJECTED", "E_QUEUE_TIMEOUT",
    "E_RATE_LIMITED", "E_ERROR", "E_INJECTED", "E_CIRCUIT_OPEN", "E_UNFINISHED",
    "E_CLIENT_TIMEOUT", "E_DEGRADED", "retry_class",
]

ERRORS = ERROR_WORDS
(OK, E_REFUSED, E_RESET, E_TIMEOUT, E_REJECTED, E_QUEUE_TIMEOUT, E_RATE_LIMITED, E_ERROR,
 E_INJECTED, E_CIRCUIT_OPEN, E_UNFINISHED, E_CLIENT_TIMEOUT) = range(len(ERRORS))
#: Not a word of the result files: a 200 answer passed up from a ``degrade`` fallback, so a
#: request is marked degraded only when the degraded answer reached it (a degraded attempt
#: later abandoned or retried does not count). Recorded as 200 with no error.
E_DEGRADED = -1


def retry_class(status: int, error: int) -> str | None:
    """The retry class of a failed attempt whose error is the code ``error`` (see
    ``topologies.outcomes.retry_class``)."""
    return _retry_class(status, ERRORS[error])
