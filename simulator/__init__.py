"""simulator — the discrete-event engine of faultmesh (on simpy).

Core abstraction: :class:`Simulation` (``engine.py``), one run of a Topology under a
Scenario from time 0 to its duration; ``simulate(topology, scenario, seed=...)`` builds and
runs one and returns a :class:`Result` (pandas tables, summary figures, ``write(dir)``).

Modules, one idea each:

* ``engine``     the run: builds services, edges, faults, autoscalers, workload, monitor
* ``workload``   client load: open (Poisson, piecewise-linear profile) and closed (users)
* ``replica``    services and replicas: slots, queue, workers, balancers, rate limit
* ``calls``      call execution: network, attempts, timeouts, retries, handling at a replica
* ``faults``     what each fault type does in its window
* ``autoscaler`` replica autoscaling with cold start and cooldown
* ``llm``        continuous batching of an LLM server replica (ttft, tpot)
* ``cost``       replica-seconds and wasted work
* ``recorder``   compact columns of requests and call attempts as the run goes
* ``results``    tables, summary.json figures and the result directory
* ``replications`` several seeds: means with Student-t confidence intervals
* ``streams``    seeded random streams, one per purpose
* ``errors``     status and error words of call outcomes
"""

from .engine import Simulation, simulate
from .results import Result

__all__ = ["Simulation", "simulate", "Result"]
