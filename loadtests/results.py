"""The client side of a result directory: one row per request the load generator sent.

The load process appends rows to a *spool* file as answers come in (so a killed run still
leaves what it saw); the runner reads the spool back, numbers the requests in the order
they were sent and writes ``requests.csv`` atomically, plus ``load.json``: the
load generator's own report (offered versus achieved arrival rate, how late users sent,
the generator's CPU), which says whether the numbers describe the system or the generator.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

from topologies.files import atomic_write, atomic_write_text

__all__ = ["RequestRow", "LoadResult", "COLUMNS", "SPOOL_COLUMNS", "ERROR_HEADER",
           "read_spool", "write_requests", "error_word", "quantile"]

#: requests.csv columns, in the documented order (docs/results.md).
COLUMNS = ("request_id", "start", "end", "latency", "status", "ok", "degraded", "attempts",
           "error")
#: Columns of the spool the load process writes; ``id`` is the request id the request
#: carried (``X-Faultmesh-Request``), numbered in send order.
SPOOL_COLUMNS = ("start", "end", "latency", "status", "ok", "degraded", "error", "lag", "id")
#: The answer header in which a faultmesh service names the root cause of a failure.
ERROR_HEADER = "X-Faultmesh-Error"


class RequestRow(NamedTuple):
    """One client request as the client saw it. Times are seconds from the start of the
    run; ``end`` and ``latency`` are None for a request still unanswered when an
    interrupted run stopped (``error == "unfinished"``); ``status`` is 0 where no answer
    came, 504 when the client gave up (``client_timeout``)."""

    request_id: int
    start: float
    end: float | None
    latency: float | None
    status: int
    ok: bool
    degraded: bool
    attempts: int
    error: str


def error_word(status: int, exception: BaseException | None, cause: str | None = None) -> str:
    """The ``error`` column for an answer with ``status`` or a failure ``exception``:
    the simulator's words where the cause is known. No answer: ``client_timeout`` (the
    client gave up), ``refused``, ``reset``, else the exception's text on one line. An
    answered failure: the root cause the service named (``cause``, its
    ``X-Faultmesh-Error`` header: ``reset``, ``timeout``, ``rejected``...), else
    ``rate_limited`` (429), ``timeout`` (504) or ``error``."""
    if 200 <= status < 300 and exception is None:
        return ""
    for _ in range(5):  # the HTTP client wraps the error that ended its last try
        inner = getattr(exception, "original", None)
        if not isinstance(inner, BaseException):
            break
        exception = inner
    if status == 0 or (exception is not None and status < 400):
        if exception is None:
            return "error"
        if isinstance(exception, ConnectionRefusedError):
            return "refused"
        if isinstance(exception, ConnectionResetError | BrokenPipeError):
            return "reset"
        name = type(exception).__name__.lower()
        text = str(exception) or type(exception).__name__
        if "timeout" in name or "timed out" in text.lower():
            return "client_timeout"
        if "connectionclosed" in name or "reset" in text.lower():
            return "reset"
        if "refused" in text.lower():
            return "refused"
        return " ".join(text.split())[:200]
    cause = " ".join((cause or "").split())
    if cause:
        return cause[:200]
    if status == 429:
        return "rate_limited"
    if status == 504:
        return "timeout"
    return "error"


def _num(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def read_spool(path: str) -> list[tuple[RequestRow, float | None]]:
    """The rows, in the order they were sent, each with the request id it carried to the
    services, and each one's lag behind its scheduled time (None for closed users), from a
    spool file; a torn last line (the load process killed mid-write) is skipped."""
    raw: list[tuple[float, float | None, float | None, int, bool, bool, str, float | None,
                    int]] = []
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        for rec in csv.reader(fh):
            if len(rec) != len(SPOOL_COLUMNS) or rec[0] == "start":
                continue
            try:
                raw.append((float(rec[0]), _num(rec[1]), _num(rec[2]), int(rec[3]),
                            rec[4] == "1", rec[5] == "1", rec[6], _num(rec[7]), int(rec[8])))
            except ValueError:
                continue
    raw.sort(key=lambda r: (r[8], r[0]))
    return [(RequestRow(r[8], r[0], r[1], r[2], r[3], r[4], r[5], 1, r[6]), r[7])
            for r in raw]


def _fmt(x: float | None) -> str:
    return "" if x is None else "%.6f" % x  # noqa: UP031


def write_requests(path: str, rows: Iterable[RequestRow]) -> None:
    """Write ``requests.csv`` atomically (times to the microsecond, as the simulator)."""
    def write(fh: IO[str]) -> None:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(COLUMNS)
        for r in rows:
            out.writerow((r.request_id, _fmt(r.start), _fmt(r.end), _fmt(r.latency), r.status,
                          r.ok, r.degraded, r.attempts, r.error))
    atomic_write(path, write)


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (linear interpolation), None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class LoadResult:
    """What one load run did: every request the client sent, and the load generator's
    account of itself.

    ``target_rate`` is the offered arrival rate averaged over the run (None for a closed
    workload); ``achieved_rate`` is the requests actually sent per second of the run.
    ``lag_*`` say how late open-workload users sent behind their schedule (coordinated
    omission: 0 when every user was free at its scheduled time). ``cpu_share`` is the
    load process's CPU time over the run's wall time (1.0 = one core saturated);
    ``cpu_warning`` is Locust's own alarm. ``partial`` marks a run stopped early (Ctrl-C).
    """

    model: str
    requests: list[RequestRow]
    duration: float
    run_time: float
    users: int
    target_rate: float | None
    achieved_rate: float
    lag_p50: float | None = None
    lag_p99: float | None = None
    lag_max: float | None = None
    late_share: float | None = None
    cpu_share: float | None = None
    cpu_warning: bool = False
    cpu_usage_max: float | None = None
    partial: bool = False
    seed: int = 0
    t0: float | None = None   # wall-clock time (time.time()) the load's run time counts from
    end: float | None = None  # run time at which the last request ended (after the drain)
    out_dir: str | None = None
    web_url: str | None = None
    notes: list[str] = field(default_factory=list)
    #: a distributed load's processes (role, cpu_share, cpu_warning); None for one process
    processes: list[dict[str, Any]] | None = None

    @property
    def generator_bound(self) -> bool:
        """Whether the load generator itself was the bottleneck (its CPU saturated)."""
        return self.cpu_warning or (self.cpu_share is not None and self.cpu_share > 0.9)

    def latency_quantile(self, q: float) -> float | None:
        """A latency quantile over answered requests, from the per-request rows."""
        return quantile([r.latency for r in self.requests if r.latency is not None], q)

    def summary(self) -> dict[str, Any]:
        """The figures of ``load.json``."""
        n = len(self.requests)
        return {
            "engine": "live", "model": self.model, "seed": self.seed,
            "duration": self.duration, "run_time": round(self.run_time, 6),
            "partial": self.partial, "users": self.users, "requests": n,
            "ok": sum(r.ok for r in self.requests),
            "unfinished": sum(r.error == "unfinished" for r in self.requests),
            "end": None if self.end is None else round(self.end, 6),
            "target_rate": self.target_rate, "achieved_rate": round(self.achieved_rate, 4),
            "rate_ratio": (round(self.achieved_rate / self.target_rate, 4)
                           if self.target_rate else None),
            "lag": {"p50": self.lag_p50, "p99": self.lag_p99, "max": self.lag_max,
                    "late_share": self.late_share},
            "latency": {"p50": self.latency_quantile(0.5), "p99": self.latency_quantile(0.99)},
            "cpu_share": self.cpu_share, "cpu_warning": self.cpu_warning,
            "cpu_usage_max": self.cpu_usage_max, "generator_bound": self.generator_bound,
            "notes": list(self.notes),
            **({"processes": self.processes} if self.processes else {}),
        }

    def describe(self) -> str:
        """One line for a terminal: achieved against target rate, and any warning."""
        target = (f" of {self.target_rate:.1f}/s targeted" if self.target_rate is not None
                  else "")
        line = (f"{len(self.requests)} requests, {self.achieved_rate:.1f}/s{target}"
                f" ({self.users} users, {self.model} model)")
        if self.partial:
            line += ", partial (interrupted)"
        if self.generator_bound:
            line += ", WARNING: load generator CPU saturated"
        return line

    def write(self, out_dir: str) -> None:
        """Write ``requests.csv`` and ``load.json`` into ``out_dir``."""
        write_requests(os.path.join(out_dir, "requests.csv"), self.requests)
        atomic_write_text(os.path.join(out_dir, "load.json"),
                          json.dumps(self.summary(), indent=2) + "\n")
