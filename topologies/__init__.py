"""The topology model: what an AI service graph is, read from YAML and checked whole.

Core abstraction: :class:`Topology` (``model.py``), a typed, immutable description of services,
their calls (edges), workload, scenarios (faults) and SLOs, with every default filled in and
every unit converted to base units (seconds, per second, bytes, fractions).

* ``load(path)`` / ``loads(text)`` read and validate a file; every problem is reported as
  ``FILE:LINE: path.to.field: message`` in one :class:`TopologyError` (``loader.py``; the
  format is declared once in ``schema.py`` with the field kinds of ``kinds.py``, and checked
  across records in ``references.py``).
* ``override(topology, {"services.llm.replicas": "4"})`` returns a re-validated copy.
* ``dump(topology)`` writes the resolved topology back to YAML (it loads to an equal model).
* The semantics both engines share live here once: ``policies.py`` (retries, budgets,
  breakers, outlier detection, rate limits), ``outcomes.py`` (attempt outcomes),
  ``sampling.py`` (distributions), ``arrivals.py`` (the open workload's arrival schedule),
  ``batching.py`` (LLM iterations with chunked prefill), ``metering.py`` (busy time),
  ``scaling.py`` (the autoscaler's rule); ``summary.py`` computes summary.json from the
  result tables for both (with ``columns.py`` and ``edges.py``).
* ``graph.py`` holds the networkx analysis: call graph, reachability, depth, fan-out, failure
  sources; ``draw.py`` draws it.
* ``json_schema()`` describes the file format for editors.
* ``errors.py`` is the root of faultmesh's exception hierarchy (``FaultmeshError``).
"""

from .draw import draw
from .errors import FaultmeshError, Problem, RunError, TopologyError, UsageError
from .graph import (
    GraphSummary,
    call_graph,
    failure_sources,
    find_cycle,
    find_cycle_in,
    reachable,
    summarize,
    unreachable,
)
from .loader import apply_overrides, dump, from_dict, load, loads, override, to_dict
from .model import (
    SLO,
    Autoscale,
    Call,
    CircuitBreaker,
    Cost,
    Distribution,
    Fault,
    Gpu,
    LLMConfig,
    LLMStep,
    Memory,
    OutlierDetection,
    ParallelGroup,
    RatePoint,
    RetryPolicy,
    Scenario,
    Service,
    Step,
    Topology,
    Workload,
)
from .schema import json_schema

__all__ = [
    "FaultmeshError", "Problem", "RunError", "TopologyError", "UsageError",
    "SLO", "Autoscale", "Call", "CircuitBreaker", "Cost", "Distribution", "Fault", "Gpu",
    "LLMConfig", "LLMStep", "Memory", "OutlierDetection", "ParallelGroup", "RatePoint",
    "RetryPolicy", "Scenario", "Service",
    "Step", "Topology", "Workload",
    "apply_overrides", "dump", "from_dict", "load", "loads", "override", "to_dict", "json_schema",
    "draw", "GraphSummary", "call_graph", "failure_sources", "find_cycle", "find_cycle_in",
    "reachable", "summarize", "unreachable",
]
