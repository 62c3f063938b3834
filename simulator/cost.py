"""Cost: what the replicas cost while the run was measured, and how much of it bought work
whose result nobody used.

Every replica costs ``cost.per_replica_hour`` from its start (cold start included) to its
stop. The measured window is [warmup, end). Work is priced per busy unit-second (a worker,
or for an LLM server a batch place: the replica price divided by ``workers`` or
``max_batch``); work is *wasted* when its result was not used: the attempt it served was
abandoned after a timeout or failed, or the client request failed in the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["replica_seconds", "used_attempts"]


def replica_seconds(spans: Sequence[Sequence], n_services: int, start: float,
                    end: float) -> np.ndarray:
    """Replica-seconds per service index (index 0 = client) within [start, end)."""
    out = np.zeros(n_services + 1)
    for svc, _rep, t0, t1 in spans:
        stop = end if t1 is None else min(t1, end)
        lo = max(t0, start)
        if stop > lo:
            out[svc] += stop - lo
    return out


def used_attempts(parent: np.ndarray, attempt_ok: np.ndarray,
                  request_of: np.ndarray, request_ok: np.ndarray) -> np.ndarray:
    """Which call attempts delivered a result that was used, up to a successful client
    request: the attempt succeeded, its caller's attempt was used (or, for the client's
    call, the request succeeded)."""
    root = parent < 0
    safe_parent = np.where(root, 0, parent)
    used = attempt_ok & np.where(root, request_ok[request_of], True)
    for _ in range(256):
        new = used & np.where(root, True, used[safe_parent] if used.size else used)
        if np.array_equal(new, used):
            break
        used = new
    return used
