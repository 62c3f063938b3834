"""What the model's resilience policies mean, as small state machines both engines run:
retry backoff and jitter (state per call), retry budgets over a sliding window, circuit
breakers on one edge, outlier detection (ejecting a failing replica from a caller's balancer)
and the token-bucket rate limit of a service.

They live here, engine-free (time is passed in, randomness comes from a draw function the
engine seeds), so the simulator and the live emulator apply the same rules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from topologies.model import CircuitBreaker, OutlierDetection, RetryPolicy

__all__ = ["Backoff", "RetryBudget", "Breaker", "OutlierDetector", "TokenBucket", "retry_wait",
           "outlier_ok", "BUDGET_FLOOR"]

#: Retries per second a budgeted edge may always make, whatever its traffic (Finagle's
#: ``minRetriesPerSec`` idea, smaller): a quiet edge can still retry now and then.
BUDGET_FLOOR = 1.0


class Backoff:
    """The waits between the attempts of ONE call under a retry policy (a new Backoff per
    call: jitter state is never shared between calls).

    ``constant`` waits ``base``, ``linear`` ``base * n``, ``exponential`` ``base * 2**(n-1)``
    before retry ``n``, each capped at ``max``: that is d. Jitter then spreads the wait:
    ``full`` draws it uniformly in [0, d], ``equal`` in [d/2, d], ``decorrelated`` in
    [d, 3 x the previous wait of this call] (the first previous wait being ``base``; capped
    at ``max``), so the backoff curve is its floor; ``none`` keeps d.
    """

    __slots__ = ("policy", "uniform", "previous")

    def __init__(self, policy: RetryPolicy, uniform: Callable[[], float]):
        self.policy = policy
        self.uniform = uniform
        self.previous = policy.base

    def wait(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 = the second attempt)."""
        p = self.policy
        if p.backoff == "constant":
            d = p.base
        elif p.backoff == "linear":
            d = p.base * retry
        else:
            d = p.base * 2.0 ** (retry - 1)
        d = min(d, p.max)
        j = p.jitter
        if j == "full":
            return self.uniform() * d
        if j == "equal":
            return d / 2 + self.uniform() * d / 2
        if j == "decorrelated":
            hi = max(d, self.previous * 3)
            self.previous = min(p.max, d + self.uniform() * (hi - d))
            return self.previous
        return d


class RetryBudget:
    """Retries on an edge may not exceed ``budget`` x the first attempts made on that edge
    over the last ``window`` seconds, plus a floor of :data:`BUDGET_FLOOR` retries per second
    (a sliding window: healthy traffic long ago banks nothing). No budget: always allowed."""

    __slots__ = ("budget", "window", "floor", "_calls", "_retries")

    def __init__(self, budget: float | None, window: float = 10.0,
                 floor: float = BUDGET_FLOOR):
        self.budget = budget
        self.window = window
        self.floor = floor * window
        self._calls: deque[float] = deque()
        self._retries: deque[float] = deque()

    def record_call(self, now: float) -> None:
        """A first attempt went out on the edge at ``now``."""
        if self.budget is not None:
            self._calls.append(now)

    def allow_retry(self, now: float) -> bool:
        """May a retry go out at ``now``? (Counts it when it may.)"""
        if self.budget is None:
            return True
        horizon = now - self.window
        calls, retries = self._calls, self._retries
        while calls and calls[0] <= horizon:
            calls.popleft()
        while retries and retries[0] <= horizon:
            retries.popleft()
        if len(retries) + 1 > self.budget * len(calls) + self.floor:
            return False
        retries.append(now)
        return True


def retry_wait(policy: RetryPolicy | None, backoff: Backoff | None, budget: RetryBudget,
               attempt: int, failure: str | None, now: float) -> float | None:
    """After attempt number ``attempt`` of a call failed with retry class ``failure`` at
    ``now``: the wait before the next attempt, or None to give up (no policy, attempts used
    up, a class the policy does not retry, or the edge's budget spent). A retry granted
    counts against the budget. ``backoff`` is the call's own (one per call)."""
    if policy is None or attempt >= policy.attempts or failure not in policy.on:
        return None
    if not budget.allow_retry(now):
        return None
    return backoff.wait(attempt) if backoff is not None else 0.0


class Breaker:
    """A circuit breaker on one edge, as the caller keeps it.

    Closed: calls pass and outcomes are counted over the last ``window`` seconds; when at
    least ``min_calls`` were made and the failure share reaches ``failure_rate`` it opens.
    Open: calls fail fast for ``open_for`` seconds. Half-open: ``half_open_calls`` trial
    calls pass; all succeeding closes it, any failing opens it again.
    """

    __slots__ = ("spec", "state", "until", "outcomes", "failures", "trials", "passed", "opened")

    def __init__(self, spec: CircuitBreaker):
        self.spec = spec
        self.state = "closed"
        self.until = 0.0
        self.outcomes: deque[tuple[float, bool]] = deque()
        self.failures = 0
        self.trials = 0
        self.passed = 0
        self.opened = 0

    def allow(self, now: float) -> bool:
        """May a call go out now? (Counts a half-open trial when it may.)"""
        if self.state == "open":
            if now < self.until:
                return False
            self.state, self.trials, self.passed = "half_open", 0, 0
        if self.state == "half_open":
            if self.trials >= self.spec.half_open_calls:
                return False
            self.trials += 1
        return True

    def record(self, now: float, ok: bool) -> None:
        """Count the outcome of a call that went out."""
        if self.state == "half_open":
            if not ok:
                self._open(now)
            else:
                self.passed += 1
                if self.passed >= self.spec.half_open_calls:
                    self.state = "closed"
                    self.outcomes.clear()
                    self.failures = 0
            return
        if self.state == "open":
            return
        out = self.outcomes
        out.append((now, ok))
        if not ok:
            self.failures += 1
        horizon = now - self.spec.window
        while out and out[0][0] < horizon:
            if not out.popleft()[1]:
                self.failures -= 1
        n = len(out)
        if n >= self.spec.min_calls and self.failures >= self.spec.failure_rate * n:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = "open"
        self.until = now + self.spec.open_for
        self.outcomes.clear()
        self.failures = 0
        self.opened += 1


def outlier_ok(status: int) -> bool:
    """How outlier detection judges an attempt's status: no answer (0) and 5xx (a timeout's
    504 included) are failures, as Envoy's consecutive gateway/5xx failures; a 429 is the
    callee working as designed, so it counts as a success."""
    return 0 < status < 500


class OutlierDetector:
    """Outlier detection on one edge as a caller keeps it (Envoy's consecutive failures):
    ``consecutive_failures`` failed attempts in a row to one callee replica eject it from the
    caller's balancer for ``ejection`` seconds; a success resets its count. Replicas are
    named by any hashable key. The balancer never ejects every replica: when all candidates
    are ejected it picks among all of them (Envoy's panic mode)."""

    __slots__ = ("spec", "failures", "ejected_until")

    def __init__(self, spec: OutlierDetection):
        self.spec = spec
        self.failures: dict[object, int] = {}
        self.ejected_until: dict[object, float] = {}

    def ejected(self, key: object, now: float) -> bool:
        until = self.ejected_until.get(key)
        return until is not None and now < until

    def record(self, key: object, now: float, ok: bool) -> None:
        """Count the outcome of an attempt sent to replica ``key`` (``ok`` as judged by
        :func:`outlier_ok`)."""
        if ok:
            self.failures[key] = 0
            return
        n = self.failures.get(key, 0) + 1
        if n >= self.spec.consecutive_failures:
            self.ejected_until[key] = now + self.spec.ejection
            n = 0
        self.failures[key] = n

    def keep(self, candidates: list, key: Callable[[object], object], now: float) -> list:
        """The candidates not ejected now (all of them when every one is)."""
        if not self.ejected_until:
            return candidates
        kept = [c for c in candidates if not self.ejected(key(c), now)]
        return kept or candidates


class TokenBucket:
    """A service's rate limit: ``rate`` tokens per second, burst of one second of rate."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float):
        self.rate = rate
        self.burst = max(1.0, rate)
        self.tokens = self.burst
        self.last = 0.0

    def take(self, now: float) -> bool:
        """Take one token if there is one (the request passes), else False (429)."""
        t = self.tokens + (now - self.last) * self.rate
        self.tokens = t if t < self.burst else self.burst
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
