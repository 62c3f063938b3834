"""Every notebook runs: its code cells are executed in order, as Jupyter would, in a fresh
interpreter (shortened by FAULTMESH_NOTEBOOK_QUICK=1)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_there_is_a_notebook():
    assert NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_code_cells_run_in_order(path, tmp_path):
    nb = json.load(open(path, encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert cells
    script = tmp_path / "notebook.py"
    # a cell's last bare expression is only displayed by Jupyter; here it is just evaluated
    script.write_text("\n\n".join(cells) + "\nprint('NOTEBOOK-OK')\n")
    env = {**os.environ, "FAULTMESH_NOTEBOOK_QUICK": "1", "MPLBACKEND": "Agg",
           "TMPDIR": str(tmp_path)}  # the notebook writes its run under a temp dir
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "NOTEBOOK-OK" in run.stdout
