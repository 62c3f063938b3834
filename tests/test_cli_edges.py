"""The command line at its edges (issue 8, points 3-7 and 14), each case through a real
``python -m faultmesh`` child process: the exit code (2 bad input, 3 environment, 1 only for
a violated SLO), one line on stderr without a traceback, and for output paths that the
command failed at once, before any work (no result directory made, within seconds, where the
bundled rag-chat would otherwise simulate for a long while).

The "environment" cases write under /proc, which no one (root included) can create files in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import quick_first

ROOT = Path(__file__).resolve().parents[1]
RAG = str(ROOT / "topologies" / "rag-chat.yaml")   # 300 s with a 30 s warmup: slow to run
FAST = 10.0  # seconds: a refused command starts Python, reads a topology and stops

TINY = textwrap.dedent("""\
    version: 1
    name: edges
    entry: a
    workload: {model: open, rate: 20/s, duration: 12s, warmup: 2s}
    services:
      a:
        latency: {dist: exponential, mean: 5ms}
        calls:
          - {to: b, timeout: 1s}
          - {to: c, timeout: 1s}
      b: {replicas: 2, latency: {dist: exponential, mean: 10ms}, cost: {per_replica_hour: 1}}
      c: {latency: {dist: exponential, mean: 20ms}}
    scenarios:
      b-down: {faults: [{type: down, target: b, start: 5s, duration: 3s}]}
    slos:
      - {metric: availability, min: 10%}
""")

# a workload so thin that no request arrives in the measured window
QUIET = textwrap.dedent("""\
    version: 1
    name: quiet
    entry: a
    workload: {model: open, rate: 0.001/s, duration: 4s, warmup: 1s}
    services:
      a: {latency: {dist: exponential, mean: 5ms}}
    slos:
      - {metric: availability, min: 99%}
""")

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")


def faultmesh(*args: str, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 120) -> tuple[int, str, str, float]:
    """Run ``python -m faultmesh ARGS`` in ``cwd``: (exit code, stdout, stderr, seconds)."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("FAULTMESH_MAX_DURATION", "GITHUB_STEP_SUMMARY")}
    environ.update({"FAULTMESH_PROGRESS": "off", **(env or {})})
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "faultmesh", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


def one_line(err: str) -> str:
    """The single stderr line of a refused command (and no traceback)."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def tiny(tmp_path: Path) -> str:
    path = tmp_path / "edges.yaml"
    path.write_text(TINY)
    return str(path)


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One real (tiny) simulated result directory for report and gate."""
    base = tmp_path_factory.mktemp("result")
    (base / "edges.yaml").write_text(TINY)
    code, _, err, _ = faultmesh("sim", "edges.yaml", "--out", "r", "--no-report", cwd=base)
    assert code == 0, err
    return str(base / "r")


# --- 3. output paths, checked before any work ----------------------------------------------
SET_LLM = ["--set", "services.llm.replicas=4,6"]
OUTPUT_CASES = [  # argv ({afile}: an existing file, {adir}: a directory), exit code, message
    (["sim", RAG, "--out", "{afile}"], 2, "--out {afile}: is a file, not a directory"),
    (["sim", RAG, "--out", "{afile}/sub"], 2, "{afile} is a file, not a directory"),
    (["sim", RAG, "--out", "/proc/x/out"], 3, "--out /proc/x/out: cannot write in /proc"),
    (["sim", RAG, "--scenario", "all", "--out", "/proc/x"], 3, "cannot write in /proc"),
    (["live", RAG, "--out", "{afile}"], 2, "is a file, not a directory"),
    (["live", RAG, "--out", "/proc/x/out"], 3, "cannot write in /proc"),
    (["report", "{result}", "-o", "/proc/x/r.html"], 3, "-o /proc/x/r.html: cannot write"),
    (["report", "{result}", "-o", "{adir}"], 2, "is a directory; give a file name"),
    (["gate", RAG, "--junit", "/proc/x/slo.xml"], 3, "--junit /proc/x/slo.xml: cannot write"),
    (["gate", RAG, "--junit", "{adir}"], 2, "is a directory; give a file name"),
    (["gate", RAG, "--out", "{afile}"], 2, "is a file, not a directory"),
    (["gate", "{result}", "--junit", "/proc/x/slo.xml"], 3, "cannot write in /proc"),
    (["sweep", RAG, *SET_LLM, "--out", "{afile}"], 2, "is a file, not a directory"),
    (["sweep", RAG, *SET_LLM, "--out", "/proc/x"], 3, "cannot write in /proc"),
    (["graph", RAG, "-o", "/proc/x/g.png"], 3, "cannot write in /proc"),
    (["schema", "-o", "{afile}/s.json"], 2, "{afile} is a file, not a directory"),
]


@needs_proc
@pytest.mark.parametrize("argv,code,message", quick_first(  # a process each: 2 in the quick loop
    OUTPUT_CASES, 2, ids=[" ".join(c[0]).replace(RAG, "RAG") for c in OUTPUT_CASES]))
def test_an_output_path_that_cannot_be_written_fails_at_once(tmp_path, result_dir, argv, code,
                                                             message):
    afile, adir = tmp_path / "afile", tmp_path / "adir"
    afile.write_text("keep me\n")
    adir.mkdir()
    where = {"afile": str(afile), "adir": str(adir), "result": result_dir}
    argv = [a.format(**where) for a in argv]
    got, out, err, seconds = faultmesh(*argv, cwd=tmp_path)
    assert got == code, (argv, out, err)
    line = one_line(err)
    assert line.startswith(f"faultmesh {argv[0]}: ") and message.format(**where) in line
    assert seconds < FAST, f"{argv}: {seconds:.1f} s; the check must come before the work"
    assert sorted(os.listdir(tmp_path)) == ["adir", "afile"]  # no result directory, no probe
    assert afile.read_text() == "keep me\n" and not os.listdir(adir)


@pytest.mark.slow
@needs_proc
def test_an_unwritable_step_summary_stops_the_gate_before_simulating(tmp_path):
    code, _, err, seconds = faultmesh("gate", RAG, cwd=tmp_path,
                                      env={"GITHUB_STEP_SUMMARY": "/proc/x/summary.md"})
    assert code == 3 and "$GITHUB_STEP_SUMMARY" in one_line(err) and seconds < FAST


@pytest.mark.slow
def test_writable_outputs_are_written_and_nothing_else_is_left(tmp_path, result_dir):
    """The checks leave no probe file behind, and a writable path still works."""
    code, out, err, _ = faultmesh("report", result_dir, "-o", str(tmp_path / "deep" / "r.html"),
                                  cwd=tmp_path)
    assert code == 0, err
    assert os.listdir(tmp_path / "deep") == ["r.html"]
    assert not [f for f in os.listdir(result_dir) if f.startswith(".faultmesh-probe")]


# --- 4. durations and runs that measured nothing ------------------------------------------
@pytest.mark.slow
def test_a_plain_number_duration_is_seconds(tiny, tmp_path):
    code, out, err, _ = faultmesh("sim", tiny, "--duration", "10", "--out", "r", "--no-report",
                                  cwd=tmp_path)
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["duration"] == 10.0


BAD_DURATIONS = [
    (["--duration", "-10s"], "--duration -10s: must be positive"),
    (["--duration=-10s"], "--duration -10s: must be positive"),
    (["--duration", "-5"], "--duration -5: must be positive"),
    (["--duration", "0"], "--duration 0: must be positive"),
    (["--duration", "soon"], "malformed duration 'soon'"),
    (["--duration", "30"], "must be longer than the workload's warmup (30s)"),
    (["--duration", "20s"], "must be longer than the workload's warmup (30s)"),
]


# every case on sim; on live (the same function) the ones that once failed differently
@pytest.mark.parametrize("command,argv,message", quick_first(
    [("sim", *case) for case in BAD_DURATIONS] + [("live", *BAD_DURATIONS[i]) for i in (0, 5)]))
def test_a_bad_duration_is_one_line_and_exit_2(tmp_path, command, argv, message):
    code, _, err, seconds = faultmesh(command, RAG, *argv, "--out", "r", cwd=tmp_path)
    assert code == 2
    assert message in one_line(err)
    assert not (tmp_path / "r").exists() and seconds < FAST


def test_a_run_that_measured_no_request_is_no_verdict(tmp_path):
    (tmp_path / "quiet.yaml").write_text(QUIET)
    code, out, err, _ = faultmesh("sim", "quiet.yaml", "--out", "r", "--no-report",
                                  cwd=tmp_path)
    assert code == 3, (out, err)
    line = one_line(err)
    assert "not an SLO verdict" in line and "no request arrived" in line and "(1s)" in line
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["requests"] == 0
    # gate over that run, and gate running it
    for argv in (["gate", "r", "--junit", "r.xml"], ["gate", "quiet.yaml", "--out", "g"]):
        code, out, err, _ = faultmesh(*argv, cwd=tmp_path)
        assert code == 3, (argv, out, err)
        # (gate running the topology first says what it simulates)
        assert "Traceback" not in err
        assert "INCOMPLETE" in out and "no request measured" in out and "FAIL" not in out
        assert err.strip().splitlines()[-1].startswith("faultmesh gate: baseline (sim, seed 0):"
                                                       " not an SLO verdict: no request")
    junit = (tmp_path / "r.xml").read_text()
    assert 'type="NoRequestMeasured"' in junit and "<failure" not in junit


@pytest.mark.slow
def test_a_live_run_that_measured_no_request_is_no_verdict(tmp_path):
    """Real processes and load: about 10 s. The live table has sim's columns."""
    (tmp_path / "quiet.yaml").write_text(QUIET)
    code, out, err, _ = faultmesh("live", "quiet.yaml", "--out", "r", "--no-report",
                                  cwd=tmp_path, timeout=120)
    assert code == 3, (out, err)
    assert "not an SLO verdict" in one_line(err)
    assert out.splitlines()[0].split() == ["run", "requests", "avail", "p50", "p99", "rps",
                                           "cost", "$/1k", "wasted", "SLOs"]
    assert out.splitlines()[1].split()[:3] == ["baseline", "live", "0"]


WEB = textwrap.dedent("""\
    version: 1
    name: web
    entry: a
    workload: {rate: 5/s, duration: 10s, warmup: 5s}
    services:
      a: {latency: {dist: exponential, mean: 5ms}}
    slos:
      - {metric: availability, min: 99%}
""")


@pytest.mark.slow
def test_stop_in_the_locust_web_ui_before_the_warmup_ends_is_no_verdict(tmp_path):
    """``live --web``, then STOP (the web UI's POST /stop) as soon as Locust answers, well
    inside the 5 s warmup: no request is measured, exit 3 saying so. About 12 s."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8089)) == 0:
            pytest.skip("port 8089 (Locust's web UI) is taken")
    (tmp_path / "web.yaml").write_text(WEB)
    environ = {k: v for k, v in os.environ.items() if k != "FAULTMESH_MAX_DURATION"}
    environ["FAULTMESH_PROGRESS"] = "off"
    proc = subprocess.Popen([sys.executable, "-m", "faultmesh", "live", "web.yaml", "--web",
                             "--out", "r", "--no-report"], cwd=tmp_path, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"live ended before its web UI answered: {proc.communicate()}")
            assert time.monotonic() < deadline, "no web UI within 60 s"
            try:
                urllib.request.urlopen("http://127.0.0.1:8089/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        stop = urllib.request.Request("http://127.0.0.1:8089/stop", data=b"", method="POST")
        assert json.loads(urllib.request.urlopen(stop, timeout=5).read())["success"]
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, (out, err)
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    # STOP ends the run (docs/live.md, The faultmesh tab): the warmup is cut at its end
    assert last.startswith("faultmesh live: web/baseline live: not an SLO verdict: the load "
                           "sent no request between the warmup ("), err
    assert re.search(r": it was stopped from Locust's web UI at \d+\.\d s: nothing to judge",
                     last), err
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["requests"] == 0


# --- 5. the entry names a service, however empty the services ------------------------------
@pytest.mark.parametrize("services", quick_first(["services: {}", "services:"]))
def test_an_entry_naming_no_service_is_an_error(tmp_path, services):
    (tmp_path / "t.yaml").write_text(
        f"version: 1\nname: t\nentry: a\nworkload: {{rate: 1/s}}\n{services}\n")
    code, out, err, _ = faultmesh("validate", "t.yaml", cwd=tmp_path)
    assert code == 2 and "Traceback" not in err
    assert "t.yaml:3: entry: unknown service 'a'" in err
    assert "t.yaml:5: services: no services" in err
    assert "ok" not in out


# --- 6. --set in the validator's notation; did you mean ------------------------------------
def test_set_takes_the_path_the_validator_prints(tiny, tmp_path):
    code, _, err, _ = faultmesh("sim", tiny, "--set", "services.a.calls[1].timeout=3s",
                                "--set", "services.a.calls.0.timeout=250ms", "--out", "r",
                                "--no-report", cwd=tmp_path)
    assert code == 0, err
    import yaml

    resolved = yaml.safe_load((tmp_path / "r" / "topology.yaml").read_text())
    calls = resolved["services"]["a"]["calls"]
    assert (calls[0]["timeout"], calls[1]["timeout"]) == (0.25, 3.0)


@pytest.mark.parametrize("path,message", quick_first([
    ("services.a.calls[2].timeout=3s",
     "services.a.calls[2]: --set services.a.calls[2].timeout: no item 2 in this list (items: 0..1)"),
    ("services.a.calls[1].timout=3s",
     "services.a.calls[1].timout: unknown field (did you mean 'timeout'?)"),
    ("services.bb.replicas=3", "--set services.bb.replicas: no such field (did you mean 'b'?)"),
]))
def test_a_bad_set_path_says_where_and_what_was_meant(tiny, tmp_path, path, message):
    code, _, err, _ = faultmesh("sim", tiny, "--set", path, "--out", "r", cwd=tmp_path)
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv", quick_first([
    ["sim", "{t}"], ["live", "{t}"], ["gate", "{t}"],
    ["sweep", "{t}", "--set", "services.b.replicas=1,2"],
]))
def test_a_misspelt_scenario_gets_did_you_mean(tiny, tmp_path, argv):
    argv = [a.format(t=tiny) for a in argv]
    code, _, err, seconds = faultmesh(*argv, "--scenario", "b-dwn", "--out", "r", cwd=tmp_path)
    assert code == 2
    assert one_line(err).endswith("not defined in edges (did you mean 'b-down'?)")
    assert not (tmp_path / "r").exists() and seconds < FAST


@pytest.mark.slow
def test_gate_over_results_suggests_a_scenario_it_has(result_dir, tmp_path):
    code, _, err, _ = faultmesh("gate", result_dir, "--scenario", "baselin", cwd=tmp_path)
    assert code == 2 and "(did you mean 'baseline'?)" in one_line(err)


# --- 7. --version -------------------------------------------------------------------------
def test_version(tmp_path):
    code, out, err, _ = faultmesh("--version", cwd=tmp_path)
    assert (code, out, err) == (0, f"faultmesh {version('faultmesh')}\n", "")


# --- 14. one unit style; replications rounded with their intervals -------------------------
LATENCY = r"(?:\d+(?:\.\d)?ms|\d+\.\d\ds|-)"


@pytest.mark.slow
def test_sim_table_and_replications_read_in_units(tiny, tmp_path):
    code, out, err, _ = faultmesh("sim", tiny, "--scenario", "b-down", "--replications", "3",
                                  "--out", "r", "--no-report", cwd=tmp_path)
    assert code == 0, err
    assert "e-" not in out and "e+" not in out
    rows = [line.split() for line in out.splitlines() if line.startswith("b-down seed")]
    assert len(rows) == 3
    for row in rows:  # name(3 words) requests avail p50 p99 ...
        assert re.fullmatch(r"\d+\.\d\d%", row[4]) and re.fullmatch(LATENCY, row[5]), row
        assert re.fullmatch(LATENCY, row[6]) and row[8].startswith("$"), row
    figures = dict(re.findall(r"^(availability|latency p99|cost) {2,}(.+)$", out, re.M))
    assert re.fullmatch(r"\d+\.\d\d% ± \d+\.\d+%", figures["availability"]), figures
    assert re.fullmatch(rf"{LATENCY} ± \d+(\.\d+)?(ms|s)", figures["latency p99"]), figures
    assert re.fullmatch(r"\$\d+\.\d+ ± \$\d+(\.\d+)?", figures["cost"]), figures


def test_float_noise_in_an_interval_reads_as_zero():
    from faultmesh.console import replications_table

    agg = {"runs": 5, "figures": {
        "availability": {"mean": 1.0, "ci95": 1.69e-16},
        "latency_p99": {"mean": 1.8412, "ci95": 0.0502},
        "cost_total": {"mean": 0.4108, "ci95": 0.0119},
        "cost_wasted": {"mean": 3e-18, "ci95": 2e-18}}}
    lines = replications_table(agg).splitlines()[1:]
    assert lines == ["availability   100.00% ± 0.00%", "latency p99    1.84s ± 0.05s",
                     "cost           $0.41 ± $0.01", "cost wasted    $0.00 ± $0.00"]
