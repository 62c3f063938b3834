"""The library face: importing faultmesh has no side effects and pulls in no engine, and one
call does what `faultmesh sim` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import faultmesh

BUNDLED = os.path.join(os.path.dirname(__file__), "..", "topologies", "rag-chat.yaml")


def _imported(code: str) -> list[str]:
    probe = (f"import sys; {code}; print(sorted(m for m in ('gevent', 'locust', 'simpy', "
             "'matplotlib', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    return eval(out.stdout)


def test_importing_faultmesh_loads_no_engine_and_gevent_stays_out_of_every_package():
    assert _imported("import faultmesh, topologies") == []
    assert not {"gevent", "locust"} & set(_imported("import reports, simulator, chaos, "
                                                     "loadtests"))


def test_simulate_run_writes_a_finalized_result_directory(tmp_path):
    topo = faultmesh.load(BUNDLED, overrides={"workload.duration": "120s"})
    summary = faultmesh.simulate_run(topo, "llm-brownout", str(tmp_path), seed=1)
    for name in ("summary.json", "requests.csv", "calls.csv", "timeseries.csv", "faults.csv",
                 "topology.yaml", "report.html"):
        assert (tmp_path / name).is_file(), name
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    assert summary["engine"] == "sim" and summary["scenario"] == "llm-brownout"
    assert {"resilience", "slos"} <= set(summary)
    assert faultmesh.load_result(str(tmp_path)).summary == summary


def test_unknown_scenario_is_a_usage_error():
    topo = faultmesh.load(BUNDLED)
    with pytest.raises(faultmesh.UsageError, match="known: baseline"):
        faultmesh.scenario_names(topo, "nope")
    assert faultmesh.scenario_names(topo, "all")[0] == "baseline"
