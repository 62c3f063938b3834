"""The live engine: a topology run as real local processes or containers, loaded by Locust,
with faults injected through a Toxiproxy proxy on every dependency edge.

Where the replicas and the fault proxy run is the run's :class:`~chaos.live.runtime.Runtime`
(``--runtime process``, the default, or ``docker``); everything below is shared by both.

:class:`LiveRun` models one live run end to end. It starts the fault proxy (the built-in
:class:`~chaos.proxy.ProxyServer`, or a real Toxiproxy given by URL), one emulator process
per service replica from the leaves of the call graph up, one proxy per (caller, callee
replica) named ``caller->callee#k`` (the client's are ``client->entry#k``), then offers the
workload with :func:`loadtests.run_load` while a scheduler thread applies and removes the
scenario's faults and, for autoscaled services, the autoscaler starts and stops replicas.
After the load has drained, every replica gets SIGTERM (it flushes its logs), the proxy
server stops, and the logs are merged into the result directory: the same files the
simulator writes, and the same summary function, so reports and gates work unchanged.

Modules:

* ``run``       -- :class:`LiveRun`: starting, loading, scheduling faults, teardown.
* ``runtime``   -- the runtime interface; processes (``process``), containers (``docker``).
* ``containers``-- the faults acting on replica containers (partition, loss, cpu, memory).
* ``wiring``    -- the call graph's order, the fault proxy, one proxy per edge.
* ``lifecycle`` -- replicas started, restarted after a kill, started and stopped by scaling.
* ``book``      -- :class:`ReplicaBook`: which replicas exist and serve, over time.
* ``faults``    -- what each fault type does to proxies, emulators and processes.
* ``autoscale`` -- the shared autoscaling rule (``topologies.scaling``) on real replicas.
* ``relay``     -- the entry's round-robin front; the membership relay of autoscaled services.
* ``results``   -- the logs merged into the result directory, and summary.json.
* ``control``   -- with ``--web``: the API the faultmesh tab of Locust's web UI reads and
  drives (faults fired and cleared by hand); ``livestate`` -- the figures it shows.

Times in the result files are seconds since the load generator's start (its ``t0``): the
replicas log against a provisional epoch and are shifted onto it.
"""

from __future__ import annotations

from .book import Replica, ReplicaBook
from .faults import EMULATOR_FAULTS, NETWORK_FAULTS, PROCESS_FAULTS
from .lifecycle import DRAIN_WAIT
from .run import FIRST_REQUEST_WAIT, LiveRun
from .wiring import answer_time_bound

__all__ = ["LiveRun", "answer_time_bound", "NETWORK_FAULTS", "EMULATOR_FAULTS",
           "PROCESS_FAULTS", "FIRST_REQUEST_WAIT", "DRAIN_WAIT", "Replica", "ReplicaBook"]
