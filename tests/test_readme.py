"""README.md's promise: exactly two commands, the second is what CI runs, and the main job
(the first command, after its set-up step) works on the bundled example."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_commands() -> list[str]:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    return [b.strip() for b in re.findall(r"```\n(.*?)```", text, re.S)]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands)
    assert commands[0].startswith("bash scripts/setup.sh && ")
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert commands[1] in ci


def test_readme_main_job_runs_on_the_bundled_example(tmp_path):
    main_job = readme_commands()[0].split("&&", 1)[1].strip()
    argv = shlex.split(main_job)
    assert argv[0] == ".venv/bin/faultmesh"
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "faultmesh", *argv[1:argv.index("--out")], "--out", str(out)]
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stderr  # 1 would mean an SLO failed: still a verdict
    assert "Traceback" not in run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "llm-brownout" and summary["slos"]
    assert (out / "report.html").stat().st_size > 10_000
