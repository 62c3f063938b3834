"""The topology model: what an AI service graph is, read from YAML and checked whole.

Core abstraction: :class:`Topology` (``model.py``), a typed, immutable description of services,
their calls (edges), workload, scenarios (faults) and SLOs, with every default filled in and
every unit converted to base units (seconds, per second, bytes, fractions).

* ``load(path)`` / ``loads(text)`` read and validate a file; every problem is reported as
  ``FILE:LINE: path.to.field: message`` in one :class:`TopologyError`.
* ``override(topology, {"services.llm.replicas": "4"})`` returns a re-validated copy.
* ``dump(topology)`` writes the resolved topology back to YAML (it loads to an equal model).
* ``graph`` holds the networkx analysis: call graph, reachability, depth, fan-out, blast sources.
* ``json_schema()`` describes the file format for editors.
"""

from .errors import FaultmeshError, Problem, RunError, TopologyError, UsageError
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
    ParallelGroup,
    RatePoint,
    RetryPolicy,
    Scenario,
    Service,
    Step,
    Topology,
    Workload,
)

__all__ = [
    "FaultmeshError", "Problem", "RunError", "TopologyError", "UsageError",
    "SLO", "Autoscale", "Call", "CircuitBreaker", "Cost", "Distribution", "Fault", "Gpu",
    "LLMConfig", "LLMStep", "ParallelGroup", "RatePoint", "RetryPolicy", "Scenario", "Service",
    "Step", "Topology", "Workload",
]
from .loader import apply_overrides, dump, from_dict, load, loads, override, to_dict
from .schema import json_schema

__all__ += ["apply_overrides", "dump", "from_dict", "load", "loads", "override", "to_dict",
            "json_schema"]
