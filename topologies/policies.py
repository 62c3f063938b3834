"""What the model's resilience policies mean, as small state machines both engines run:
retry backoff and jitter, retry budgets, circuit breakers on one edge, and the token-bucket
rate limit of a service.

They live here, engine-free (time is passed in, randomness comes from a draw function the
engine seeds), so the simulator and the live emulator apply the same rules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from topologies.model import CircuitBreaker, RetryPolicy

__all__ = ["Backoff", "RetryBudget", "Breaker", "TokenBucket", "retry_wait"]


class Backoff:
    """The waits between the attempts of one call under a retry policy.

    ``constant`` waits ``base``, ``linear`` ``base * n``, ``exponential`` ``base * 2**(n-1)``
    before retry ``n``, each capped at ``max``; jitter then spreads the wait: ``full`` draws
    it uniformly in [0, d], ``equal`` in [d/2, d], ``decorrelated`` in [base, 3 x previous]
    (capped at ``max``), ``none`` keeps d.
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
            hi = max(p.base, self.previous * 3)
            self.previous = min(p.max, p.base + self.uniform() * (hi - p.base))
            return self.previous
        return d


class RetryBudget:
    """Retries on an edge may not exceed ``budget`` x the calls made on that edge."""

    __slots__ = ("budget", "calls", "retries")

    def __init__(self, budget: float | None):
        self.budget = budget
        self.calls = 0
        self.retries = 0

    def allow_retry(self) -> bool:
        return self.budget is None or self.retries + 1 <= self.budget * self.calls


def retry_wait(policy: RetryPolicy | None, backoff: Backoff | None, budget: RetryBudget,
               attempt: int, failure: str | None) -> float | None:
    """After attempt number ``attempt`` failed with retry class ``failure``: the wait before
    the next attempt, or None to give up (no policy, attempts used up, a class the policy
    does not retry, or the edge's budget spent). A retry granted counts against the budget."""
    if policy is None or attempt >= policy.attempts or failure not in policy.on:
        return None
    if not budget.allow_retry():
        return None
    budget.retries += 1
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
