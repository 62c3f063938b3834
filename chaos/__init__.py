"""chaos: the live engine — a topology run as real services on this machine, faults injected.

Its core abstraction is the **live run** (:class:`chaos.live.LiveRun`): one object built from a
topology and a scenario that starts every service's replicas as emulator processes, routes
every dependency edge (caller → callee) through a fault proxy, loads the entry with Locust,
applies the scenario's faults on schedule and writes the same result directory as the
simulator (docs/live.md). Docker containers as replicas are not built yet.

* :mod:`chaos.live` — the live run and its fault scheduler (``faultmesh live``).

* :mod:`chaos.proxy` — the fault proxy: a Toxiproxy-API-compatible server (``ProxyServer``),
  driven by ``toxiproxy-python`` exactly as a real Toxiproxy is; network faults (``latency``,
  ``bandwidth``, ``timeout``, ``reset_peer``) are its toxics and ``down`` is a disabled proxy.
* :mod:`chaos.emulator` — the service emulator: the program each replica process runs
  (``python -m chaos.emulator``), behaving as the shared semantics say (docs/simulation.md);
  docs/emulator.md.
* :mod:`chaos.images` — the container image that runs the emulator and the fault proxy,
  built with no registry and tagged by a hash of the sources (``faultmesh images``);
  docs/docker.md.

Importing ``chaos`` imports nothing else; ``import chaos.proxy`` for the server.
"""

__all__ = ["emulator", "images", "live", "proxy"]
