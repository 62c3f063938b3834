"""Same seed, same results, bit for bit — across processes too, where memory addresses and
hash seeds differ (an ordering that leaks either would show here, e.g. when a kill fault
interrupts a replica's in-flight requests)."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys

import pytest

# two simulator processes per scenario (~2-4 s each): CI runs them, the quick loop does not
pytestmark = pytest.mark.slow

RAG = os.path.join(os.path.dirname(__file__), "..", "topologies", "rag-chat.yaml")


@pytest.mark.parametrize("scenario", ["crash-one-llm", "deploy-llm-at-peak", "vectordb-outage"])
def test_runs_in_two_processes_write_identical_files(tmp_path, scenario):
    outs = []
    for i, hashseed in enumerate(("1", "2")):
        out = tmp_path / f"run{i}"
        subprocess.run([sys.executable, "-m", "faultmesh", "sim", RAG, "--scenario", scenario,
                        "--seed", "5", "--out", str(out), "--no-report"],
                       check=False, capture_output=True, timeout=300,
                       env={**os.environ, "PYTHONHASHSEED": hashseed})
        outs.append(out)
    for name in ("requests.csv", "calls.csv", "timeseries.csv", "faults.csv", "summary.json"):
        assert filecmp.cmp(outs[0] / name, outs[1] / name, shallow=False), name
