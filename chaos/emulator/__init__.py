"""The service emulator: the program each replica process of a live run runs.

A replica of a topology service as a real HTTP server on asyncio, behaving as the project's
shared semantics say (concurrency slots and queue, workers, rate limit, LLM continuous
batching, error rate, calls with timeouts, retries, breakers and fallbacks), logging its call
attempts as calls.csv rows. See docs/emulator.md.

Sections:

* :mod:`~chaos.emulator.replica` — :class:`ReplicaServer`, what a request goes through;
* :mod:`~chaos.emulator.calls` — one edge's balancer and policies around real attempts;
* :mod:`~chaos.emulator.client` — the HTTP/1.1 client with keep-alive pools;
* :mod:`~chaos.emulator.llm` — continuous batching on the real clock;
* :mod:`~chaos.emulator.log`, :mod:`~chaos.emulator.stats` — calls.csv and timeseries rows;
* :mod:`~chaos.emulator.admin` — the ``/_faultmesh/`` admin API (``errors``, ``slow``);
* :mod:`~chaos.emulator.draws` — seeded draws of topology distributions;
* ``python -m chaos.emulator`` — the process entry.
"""

from __future__ import annotations

from chaos.emulator.calls import DEGRADED_HEADER, ERROR_HEADER, REQUEST_HEADER
from chaos.emulator.log import CALL_COLUMNS, TS_COLUMNS
from chaos.emulator.replica import ReplicaServer

__all__ = ["ReplicaServer", "REQUEST_HEADER", "ERROR_HEADER", "DEGRADED_HEADER",
           "CALL_COLUMNS", "TS_COLUMNS"]
