"""A run: one :class:`Simulation` built from a Topology and a Scenario, and ``simulate()``.

The simulation owns the simpy environment, the random streams, the services and their
replicas, the edges with their policy state, the fault injector, the autoscalers, the client
workload and a monitor that samples every service once per simulated second.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import simpy

from topologies.errors import UsageError
from topologies.model import Call, ParallelGroup, Scenario, Topology

from .autoscaler import autoscaler
from .calls import CallExecutor, Edge
from .errors import E_CLIENT_TIMEOUT, E_DEGRADED, E_UNFINISHED
from .faults import FaultInjector
from .llm import BatchEngine
from .recorder import Recorder
from .replica import Replica, ServiceRuntime
from .results import Result
from .streams import Streams
from .workload import start_workload

__all__ = ["Simulation", "simulate", "Progress"]

#: ``progress(now, duration, requests)``: simulated time, simulated duration, requests so far.
Progress = Callable[[float, float, int], None]


class Simulation:
    """One run of a topology under a scenario, from time 0 to ``duration`` seconds."""

    def __init__(self, topology: Topology, scenario: Scenario | str | None = None, *,
                 seed: int = 0, duration: float | None = None):
        if not isinstance(topology, Topology):
            raise UsageError(f"topology: expected a Topology, not {type(topology).__name__}")
        if isinstance(scenario, str) or scenario is None:
            try:
                scenario = topology.scenario(scenario)
            except KeyError:
                known = ", ".join(sorted(topology.scenarios)) or "none"
                raise UsageError(f"scenario {scenario!r} is not defined (known: {known})") \
                    from None
        if not isinstance(scenario, Scenario):
            raise UsageError(f"scenario: expected a name or a Scenario, not {scenario!r}")
        self.topology = topology
        self.scenario = scenario
        self.seed = seed
        self.duration = float(duration if duration is not None else topology.workload.duration)
        if not self.duration > 0:
            raise UsageError(f"duration: must be positive, not {self.duration}")
        if topology.entry not in topology.services:
            raise UsageError(f"entry: unknown service {topology.entry!r}")
        self.env = env = simpy.Environment()
        self.streams = streams = Streams(seed)
        self.rec = rec = Recorder()
        self.names = ["client", *topology.services]
        self.services: dict[str, ServiceRuntime] = {}
        for i, (name, spec) in enumerate(topology.services.items(), start=1):
            factory = self._engine_factory(name) if spec.llm is not None else None
            self.services[name] = ServiceRuntime(env, spec, i, streams.uniform(f"balancer:{name}"),
                                                 factory)
        # edges
        self.edges_into: dict[str, list[Edge]] = {name: [] for name in self.services}
        steps: dict[str, list[Any]] = {}
        self._sites: dict[str, int] = {}
        for name, spec in topology.services.items():
            compiled: list[Any] = []
            for step in spec.calls:
                if isinstance(step, ParallelGroup):
                    compiled.append(tuple(self._edge(name, c) for c in step.parallel))
                else:
                    compiled.append(self._edge(name, step))
            steps[name] = compiled
        self.client_edge = self._edge("client", Call(to=topology.entry))
        self.faults = FaultInjector(self, scenario.faults)
        for edge_list in self.edges_into.values():
            for e in edge_list:
                caller = self.services.get(e.caller)
                e.finalise(caller.killable if caller is not None else False)
        self.calls = CallExecutor(
            env, rec, steps,
            uniforms={n: streams.uniform(f"service:{n}") for n in self.services},
            latency={n: streams.sampler(s.latency, f"latency:{n}")
                     for n, s in topology.services.items()
                     if not (s.latency.kind == "constant" and not s.latency.value)},
            network_uniform=streams.uniform("network"))
        # replicas and autoscalers
        for svc in self.services.values():
            spec = svc.spec
            n = spec.replicas
            if spec.autoscale is not None:
                n = min(spec.autoscale.max, max(spec.autoscale.min, n))
                env.process(autoscaler(self, svc, spec.autoscale))
            for _ in range(n):
                self.start_replica(svc, ready_after=0.0)
        self.client_timeout = float(topology.workload.timeout)
        self.outstanding = 0          # requests without an outcome yet
        self._idle: simpy.Event | None = None
        start_workload(env, topology.workload, streams, self._new_request, self._client,
                       until=self.duration)
        self.timeseries: dict[str, list] = {k: [] for k in (
            "t", "service", "replicas", "ready_replicas", "busy", "queued", "utilization",
            "throughput", "errors", "batch")}
        env.process(self._monitor())

    # -- building ---------------------------------------------------------------------

    def _edge(self, caller: str, call: Call) -> Edge:
        if call.to not in self.services:
            raise UsageError(f"services.{caller}.calls: unknown service {call.to!r}")
        callee = self.services[call.to]
        caller_index = self.names.index(caller)
        site = self._sites.get(caller, 0)
        self._sites[caller] = site + 1
        e = Edge(caller, caller_index, callee, call,
                 self.streams.uniform(f"retry:{caller}->{call.to}"), site)
        self.edges_into[call.to].append(e)
        return e

    def _engine_factory(self, name: str) -> Callable[[Replica], BatchEngine]:
        spec = self.topology.services[name]
        assert spec.llm is not None
        prompt = self.streams.tokens(spec.llm.prompt_tokens, f"prompt_tokens:{name}")
        output = self.streams.tokens(spec.llm.output_tokens, f"output_tokens:{name}")
        return lambda rep: BatchEngine(self.env, rep, spec.llm, self.rec, prompt, output)

    # -- replica lifecycle (used by faults and autoscalers) -------------------------------

    def start_replica(self, svc: ServiceRuntime, ready_after: float | None) -> Replica:
        """A new replica starts now (and costs from now); it serves after ``ready_after``
        seconds, or when :meth:`make_ready` is called if None."""
        rep = svc.new_replica()
        rep.span = [svc.index, rep.index, self.env.now, None]
        self.rec.replica_spans.append(rep.span)
        if ready_after == 0.0:
            self.make_ready(rep)
        elif ready_after is not None:
            self.env.process(self._ready_later(rep, ready_after))
        return rep

    def _ready_later(self, rep: Replica, delay: float):
        yield self.env.timeout(delay)
        if not rep.stopped:
            self.make_ready(rep)

    def make_ready(self, rep: Replica) -> None:
        rep.serving = True
        rep.service.refresh()

    def stop_replica(self, rep: Replica) -> None:
        """Stop a replica gracefully: no new requests; those in flight still finish."""
        rep.stopped = True
        rep.serving = False
        if rep.span is not None:
            rep.span[3] = self.env.now
        rep.service.refresh()

    # -- clients and monitor ---------------------------------------------------------------

    def _new_request(self) -> int:
        self.outstanding += 1
        return self.rec.request_start(self.env.now)

    def _client(self, rid: int):
        """Carry request ``rid`` to the entry; a closed workload's user waits for it."""
        if self.topology.workload.model == "closed":
            p = self.env.process(self._request(rid))
            yield p | self.env.timeout(self.client_timeout)
            if not p.triggered:
                self._give_up(rid)
        else:
            yield from self._request(rid)

    def _request(self, rid: int):
        rec = self.rec
        rec.r_call[rid] = rec.n_calls   # the client's attempt is the next one recorded
        st, er = yield from self.calls.call(self.client_edge, rid, -1)
        if self.env.now > rec.r_start[rid] + self.client_timeout:
            self._give_up(rid)          # answered after the client had given up
            return
        if er == E_DEGRADED:
            rec.r_degraded[rid] = 1
            er = 0
        rec.request_end(rid, self.env.now, st, er)
        self._done()

    def _give_up(self, rid: int) -> None:
        """The client gave up on ``rid`` at its deadline: 504 ``client_timeout`` for the
        request and for the client's call attempt (whatever the topology still does)."""
        rec = self.rec
        deadline = rec.r_start[rid] + self.client_timeout
        first = rec.r_error[rid] == E_UNFINISHED
        rec.request_end(rid, deadline, 504, E_CLIENT_TIMEOUT)
        cid = rec.r_call[rid]
        if cid >= 0:
            rec.call_end(cid, deadline, 504, E_CLIENT_TIMEOUT)
        if first:
            self._done()

    def _done(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0 and self._idle is not None and not self._idle.triggered:
            self._idle.succeed()

    def _monitor(self):
        """Sample every service once per second (values of the interval [t, t + 1))."""
        now = self.env.now
        self._last = {s.name: (s.busy_meter.total(now), s.ready_meter.total(now),
                               s.answered_ok, s.answered_error)
                      for s in self.services.values()}
        self._sampled_to = 0.0
        while True:
            yield self.env.timeout(1.0)
            self._sample()

    def _sample(self) -> None:
        ts = self.timeseries
        t = self._sampled_to
        width = self.env.now - t
        now = self.env.now
        for s in self.services.values():
            busy0, ready0, ok, err = self._last[s.name]
            busy_time = s.busy_meter.total(now)
            ready_time = s.ready_meter.total(now)
            ready = len(s.serving)
            busy = sum(r.busy() for r in s.serving)
            ts["t"].append(t)
            ts["service"].append(s.name)
            ts["replicas"].append(len(s.running()))
            ts["ready_replicas"].append(ready)
            ts["busy"].append(busy)
            ts["queued"].append(sum(r.queued() for r in s.replicas if not r.stopped))
            # busy unit-seconds inside the interval over the ready replicas' capacity-seconds
            capacity_time = s.capacity * (ready_time - ready0)
            ts["utilization"].append((busy_time - busy0) / capacity_time if capacity_time > 0
                                     else 0.0)
            ts["throughput"].append((s.answered_ok - ok) / width)
            ts["errors"].append(s.answered_error - err)
            ts["batch"].append(busy if s.spec.llm is not None else math.nan)
            self._last[s.name] = (busy_time, ready_time, s.answered_ok, s.answered_error)
        self._sampled_to = self.env.now

    def _flush(self) -> None:
        """Record the last (possibly partial) interval when the run stops."""
        if self.env.now > self._sampled_to + 1e-9:
            self._sample()

    # -- running ------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> Result:
        """Run to ``duration``, then drain: no new request arrives and the run goes on until
        every request has an outcome (the client gives up after ``workload.timeout``, so at
        most that long). Ctrl-C stops it at once; the result is then marked partial."""
        env = self.env
        end = self.duration
        partial = False
        try:
            if progress is None:
                env.run(until=end)
            else:
                chunk = max(1.0, end / 100.0)
                while env.now < end:
                    env.run(until=min(end, env.now + chunk))
                    progress(env.now, end, self.rec.n_requests)
            self._drain()
        except KeyboardInterrupt:
            partial = True
            self.rec.trim()
            rows = min(len(column) for column in self.timeseries.values())
            for column in self.timeseries.values():  # a sample may have been cut short too
                del column[rows:]
        self._flush()
        return Result.from_simulation(self, min(env.now, end), partial)

    def _drain(self) -> None:
        """After ``duration``: run until no request is outstanding, at most one client
        timeout; requests still without an answer then are client timeouts."""
        env = self.env
        if self.outstanding > 0:
            self._idle = env.event()
            env.run(until=self._idle | env.timeout(self.client_timeout))
        rec = self.rec
        if self.outstanding > 0:
            for rid in range(rec.n_requests):
                if rec.r_error[rid] == E_UNFINISHED:
                    self._give_up(rid)


def simulate(topology: Topology, scenario: Scenario | str | None = None, *, seed: int = 0,
             duration: float | None = None, overrides: Mapping[str, Any] | None = None,
             progress: Progress | None = None) -> Result:
    """Simulate ``topology`` under ``scenario`` (a name, a Scenario, or None for no faults).

    ``overrides`` maps dotted paths to values, applied with ``topologies.override``.
    The same seed gives the same result, bit for bit.
    """
    if overrides:
        from topologies import override

        topology = override(topology, dict(overrides))
    return Simulation(topology, scenario, seed=seed, duration=duration).run(progress)
