"""The recorder: what happened during a run, kept in compact typed columns.

One row per client request and one per call attempt, appended when the request or attempt
starts (so nothing in flight is ever lost) and completed when it ends. Columns are
``array.array`` of machine numbers, not dicts per record: a million calls fit in tens of MB.
"""

from __future__ import annotations

import math
from array import array

from .errors import E_UNFINISHED

__all__ = ["Recorder"]

NAN = math.nan


class Recorder:
    """Columns of requests, call attempts, LLM generations, replica lifetimes and faults."""

    def __init__(self) -> None:
        # requests, indexed by request id
        self.r_start = array("d")
        self.r_end = array("d")
        self.r_status = array("h")
        self.r_error = array("b")
        self.r_degraded = array("b")
        self.r_call = array("q")   # the client's call attempt of each request
        # call attempts, indexed by call id
        self.c_request = array("q")
        self.c_parent = array("q")
        self.c_caller = array("h")
        self.c_callee = array("h")
        self.c_replica = array("i")
        self.c_attempt = array("h")
        self.c_site = array("h")   # index of the call among the caller's calls
        self.c_start = array("d")
        self.c_end = array("d")
        self.c_status = array("h")
        self.c_error = array("b")
        self.c_cost = array("d")   # USD of the callee's own work for this attempt
        # LLM generations (sparse): call id -> (ttft, tpot, output tokens)
        self.llm: dict[int, tuple[float, float, int]] = {}
        # replica lifetimes: [service index, replica index, start, stop or None]
        self.replica_spans: list[list] = []
        # faults applied: [type, target, start, end or None, parameters]
        self.faults: list[list] = []

    def request_start(self, now: float) -> int:
        """Register a client request arriving at ``now``; returns its id."""
        rid = len(self.r_start)
        self.r_start.append(now)
        self.r_end.append(NAN)
        self.r_status.append(0)
        self.r_error.append(E_UNFINISHED)
        self.r_degraded.append(0)
        self.r_call.append(-1)
        return rid

    def request_end(self, rid: int, now: float, status: int, error: int) -> None:
        self.r_end[rid] = now
        self.r_status[rid] = status
        self.r_error[rid] = error

    def call_start(self, rid: int, parent: int, caller: int, callee: int, attempt: int,
                   now: float, site: int = 0) -> int:
        """Register a call attempt starting at ``now``; returns its id."""
        cid = len(self.c_start)
        self.c_request.append(rid)
        self.c_parent.append(parent)
        self.c_caller.append(caller)
        self.c_callee.append(callee)
        self.c_replica.append(-1)
        self.c_attempt.append(attempt)
        self.c_site.append(site)
        self.c_start.append(now)
        self.c_end.append(NAN)
        self.c_status.append(0)
        self.c_error.append(E_UNFINISHED)
        self.c_cost.append(0.0)
        return cid

    def call_end(self, cid: int, now: float, status: int, error: int) -> None:
        self.c_end[cid] = now
        self.c_status[cid] = status
        self.c_error[cid] = error

    def trim(self) -> None:
        """Cut the columns to the rows complete in all of them: a Ctrl-C can land between
        two appends of one row."""
        for prefix in ("r_", "c_"):
            columns = [v for k, v in vars(self).items()
                       if k.startswith(prefix) and isinstance(v, array)]
            rows = min(len(c) for c in columns)
            for column in columns:
                del column[rows:]
        for cid in [cid for cid in self.llm if cid >= len(self.c_start)]:
            del self.llm[cid]

    @property
    def n_requests(self) -> int:
        return len(self.r_start)

    @property
    def n_calls(self) -> int:
        return len(self.c_start)
