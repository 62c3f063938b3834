"""faultmesh's front door: the CLI (``faultmesh.cli``) and a small facade of the main calls."""

from topologies import FaultmeshError, RunError, Topology, TopologyError, UsageError

__all__ = ["FaultmeshError", "RunError", "Topology", "TopologyError", "UsageError"]
