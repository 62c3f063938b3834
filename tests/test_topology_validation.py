"""Every validation message, shown on a small topology: file, line, field path, message.

Each case edits the valid BASE topology (conftest.py); the line the problem must be
reported on carries the marker ``#<<``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import BASE

import topologies
from topologies import TopologyError


def problems_of(text: str, file: str = "t.yaml") -> list[str]:
    with pytest.raises(TopologyError) as info:
        topologies.loads(text, file=file)
    return [str(p) for p in info.value.problems]


def marked_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if "#<<" in line:
            return number
    raise AssertionError("case has no #<< marker")


FAULT = "{type: latency, target: llm, start: 10s, duration: 20s, latency: 1s}"

# (case id, old text in BASE, new text, expected "path: message" fragment)
CASES = [
    ("unsupported-version", "version: 1", "version: 2 #<<",
     "version: unsupported version 2; this faultmesh reads version 1"),
    ("unknown-top-field", "name: tiny", "name: tiny\nscenario: {} #<<",
     "scenario: unknown field (did you mean 'scenarios'?)"),
    ("unknown-service-field", "        replicas: 2", "        replica: 2 #<<",
     "services.gateway.replica: unknown field (did you mean 'replicas'?)"),
    ("negative-replicas", "        replicas: 2", "        replicas: -1 #<<",
     "services.gateway.replicas: must be at least 0, got -1"),
    ("zero-workers", "        workers: 4", "        workers: 0 #<<",
     "services.gateway.workers: must be at least 1, got 0"),
    ("fractional-workers", "        workers: 4", "        workers: 2.5 #<<",
     "services.gateway.workers: expected a whole number, got float 2.5"),
    ("wrong-type-text", "        replicas: 2", "        replicas: two #<<",
     "services.gateway.replicas: expected a whole number, got the text 'two'"),
    ("wrong-type-mapping", "      cache: {kind: cache}", "      cache: [cache] #<<",
     "services.cache: expected a mapping"),
    ("wrong-type-list", "        calls:\n          - to: llm",
     "        calls: {to: llm} #<<\n        x_calls:\n          - to: llm",
     "services.gateway.calls: expected a list, got a mapping"),
    ("probability-above-one", "{to: cache, p: 0.5}", "{to: cache, p: 1.5} #<<",
     "services.gateway.calls[1].parallel[1].p: must be at most 1, got 1.5"),
    ("percentage-above-100", "min: 99%}", "min: 150%} #<<",
     "slos[0].min: must be at most 1, got 150%"),
    ("malformed-percentage", "min: 99%}", "min: lots} #<<",
     "slos[0].min: malformed percentage 'lots'"),
    ("malformed-duration", "timeout: 2s", "timeout: 2 seconds #<<",
     "services.gateway.calls[0].timeout: unknown duration unit 'seconds'"),
    ("duration-without-unit", "timeout: 2s", "timeout: '2' #<<",
     "duration '2' needs a unit"),
    ("malformed-rate", "rate: 10/s", "rate: 10 per second #<<",
     "workload.rate: malformed rate '10 per second'"),
    ("malformed-size", "{to: vectordb, timeout: 1s}",
     "{to: vectordb, timeout: 1s, request_size: 3 parsecs} #<<",
     "request_size: unknown size unit 'parsecs'"),
    ("lognormal-p99-below-median", "median: 3ms, p99: 15ms}", "median: 30ms, p99: 15ms} #<<",
     "services.gateway.latency: p99 (0.015) must be greater than the median (0.03)"),
    ("distribution-wrong-params", "{dist: lognormal, median: 3ms, p99: 15ms}",
     "{dist: lognormal, median: 3ms, p90: 15ms} #<<",
     "services.gateway.latency.p90: not a parameter of a lognormal distribution"),
    ("distribution-incomplete", "{dist: lognormal, median: 3ms, p99: 15ms}",
     "{dist: lognormal, median: 3ms} #<<",
     "a lognormal distribution needs median+p99 or mean+cv"),
    ("distribution-unknown", "{dist: lognormal, median: 3ms, p99: 15ms}",
     "{dist: lognormale, median: 3ms, p99: 15ms} #<<",
     "unknown distribution the text 'lognormale' (did you mean 'lognormal'?)"),
    ("distribution-missing-dist", "{dist: lognormal, median: 3ms, p99: 15ms}",
     "{median: 3ms, p99: 15ms} #<<", "services.gateway.latency: missing required field 'dist'"),
    ("empirical-file-missing", "{dist: lognormal, median: 3ms, p99: 15ms}",
     "{dist: empirical, file: nowhere.csv} #<<", "cannot read samples file"),
    ("uniform-low-above-high", "{dist: lognormal, median: 3ms, p99: 15ms}",
     "{dist: uniform, low: 5ms, high: 1ms} #<<", "low (0.005) must not exceed high (0.001)"),
    ("unknown-balancer", "        replicas: 2", "        replicas: 2\n        balancer: leastrequest #<<",
     "balancer: unknown value the text 'leastrequest' (did you mean 'least_request'?)"),
    ("unknown-retry-class", "on: [timeout, 5xx, 429]}", "on: [timeout, 5xx, 503]} #<<",
     "retry.on[2]: unknown value the text '503'"),
    ("retry-base-above-max", "base: 50ms, max: 1s, on: [timeout, 5xx, 429]}",
     "base: 5s, max: 1s} #<<",
     "retry.base: base (5s) must not exceed max (1s)"),
    ("open-workload-without-rate", "      rate: 10/s\n", "      model: open #<<\n",
     "workload.rate: an open workload needs either rate or profile"),
    ("closed-workload-without-users", "      rate: 10/s\n", "      model: closed #<<\n",
     "workload.users: a closed workload needs users"),
    ("closed-workload-with-rate", "      rate: 10/s\n", "      model: closed\n      users: 5\n"
     "      rate: 10/s #<<\n", "workload.rate: rate belongs to an open workload"),
    ("profile-out-of-order", "      rate: 10/s\n",
     "      profile: [{at: 30s, rate: 5/s}, {at: 10s, rate: 8/s}] #<<\n",
     "workload.profile: profile points must be in time order"),
    ("warmup-too-long", "      warmup: 5s", "      warmup: 90s #<<",
     "workload.warmup: warmup (90s) must be shorter than duration (60s)"),
    ("llm-block-on-http", "      vectordb: {kind: vectordb, latency: 5ms}",
     "      vectordb: {kind: vectordb, latency: 5ms, llm: {max_batch: 4}} #<<",
     "services.vectordb.llm: an llm block needs kind: llm"),
    ("batched-tokens-below-max-batch",
     "        llm: {max_batch: 8, output_tokens: {dist: exponential, mean: 100}}",
     "        llm: {max_batch: 8, max_batched_tokens: 4, #<<\n"
     "              output_tokens: {dist: exponential, mean: 100}}",
     "services.llm.llm.max_batched_tokens: max_batched_tokens (4) must be at least max_batch (8)"),
    ("zero-client-timeout", "      warmup: 5s", "      warmup: 5s\n      timeout: 0s #<<",
     "workload.timeout: must be greater than 0s"),
    ("outlier-zero-failures", "{to: vectordb, timeout: 1s}",
     "{to: vectordb, timeout: 1s, outlier_detection: {consecutive_failures: 0}} #<<",
     "outlier_detection.consecutive_failures: must be at least 1"),
    ("autoscale-min-above-max", "        cost: {per_replica_hour: 0.8}",
     "        cost: {per_replica_hour: 0.8}\n        autoscale: {min: 5, max: 2} #<<",
     "services.llm.autoscale.min: min (5) must not exceed max (2)"),
    ("replicas-outside-autoscale", "        cost: {per_replica_hour: 0.8}",
     "        cost: {per_replica_hour: 0.8}\n        replicas: 9 #<<\n"
     "        autoscale: {min: 1, max: 4}",
     "services.llm.replicas: replicas (9) must lie within autoscale min..max (1..4)"),
    ("unknown-entry", "entry: gateway", "entry: gatway #<<",
     "entry: unknown service 'gatway' (did you mean 'gateway'?)"),
    ("unknown-callee", "{to: vectordb, timeout: 1s}", "{to: vectorbd, timeout: 1s} #<<",
     "services.gateway.calls[1].parallel[0].to: unknown service 'vectorbd' "
     "(did you mean 'vectordb'?)"),
    ("call-cycle", "      cache: {kind: cache}", "      cache: {kind: cache, calls: [{to: gateway}]} #<<",
     "call cycle: cache -> gateway -> cache"),
    ("self-call", "      cache: {kind: cache}", "      cache: {kind: cache, calls: [{to: cache}]} #<<",
     "services.cache.calls[0]: call cycle: cache -> cache"),
    ("unknown-fault-target", FAULT, FAULT.replace("llm", "lm") + " #<<",
     "scenarios.brownout.faults[0].target: unknown service 'lm' (did you mean 'llm'?)"),
    ("fault-edge-not-called", FAULT, FAULT.replace("llm", "cache->llm") + " #<<",
     "no such edge: cache does not call llm"),
    ("unknown-fault-type", FAULT, FAULT.replace("latency,", "latncy,") + " #<<",
     "faults[0].type: unknown value the text 'latncy' (did you mean 'latency'?)"),
    ("fault-parameter-of-other-type", "duration: 20s, latency: 1s}",
     "duration: 20s, latency: 1s, factor: 3} #<<",
     "scenarios.brownout.faults[0].factor: unknown field"),
    ("fault-missing-parameter", "duration: 20s, latency: 1s}", "duration: 20s} #<<",
     "scenarios.brownout.faults[0]: missing required field 'latency'"),
    ("fault-after-run", FAULT, FAULT.replace("10s", "90s") + " #<<",
     "faults[0].start: starts at 90s, after the workload ends (60s)"),
    ("kill-too-many-replicas", FAULT, "{type: kill, target: gateway, replicas: 3} #<<",
     "faults[0].replicas: 3 replicas, but gateway has at most 2"),
    ("unknown-slo-metric", "{metric: availability, min: 99%}",
     "{metric: availabilty, min: 99%} #<<",
     "slos[0].metric: unknown value the text 'availabilty' (did you mean 'availability'?)"),
    ("slo-without-limit", "{metric: availability, min: 99%}", "{metric: availability} #<<",
     "slos[0]: missing the limit: give min or max"),
    ("slo-min-and-max", "{metric: availability, min: 99%}",
     "{metric: availability, min: 99%, max: 100%} #<<", "slos[0]: give exactly one of min or max"),
    ("bad-service-name", "      cache: {kind: cache}", "      cache: {kind: cache}\n      'a b': {} #<<",
     "services.a b: names use letters, digits"),
    ("duplicate-key", "        workers: 4", "        workers: 4\n        workers: 8 #<<",
     "duplicate key 'workers' (first given on line"),
    ("complex-key", "name: tiny", "name: tiny\n? [a, b] #<<\n: 1",
     "mapping keys must be plain names"),
    ("missing-entry", "entry: gateway\n", "", "(top level): missing required field 'entry'"),
    ("null-where-a-value-is-needed", "        replicas: 2", "        replicas: null #<<",
     "services.gateway.replicas: needs a value, got nothing (null)"),
    ("zero-timeout", "            timeout: 2s", "            timeout: 0s #<<",
     "services.gateway.calls[0].timeout: must be greater than 0s, got 0s"),
    ("empty-parallel-group", "          - parallel:\n              - {to: vectordb, timeout: 1s}\n              - {to: cache, p: 0.5}",
     "          - parallel: [] #<<", "services.gateway.calls[1].parallel: needs at least 1 item(s)"),
    ("services-not-a-mapping", "    services:\n", "    services: [gateway] #<<\n    x_services:\n",
     "services: expected a mapping of names, got a list"),
    ("entry-not-text", "entry: gateway", "entry: 5 #<<", "entry: expected a text, got int 5"),
    ("cv-not-a-number", "{dist: lognormal, median: 3ms, p99: 15ms}", "{dist: gamma, mean: 3ms, cv: lots} #<<",
     "services.gateway.latency.cv: expected a number, got the text 'lots'"),
    ("cv-infinite", "{dist: lognormal, median: 3ms, p99: 15ms}", "{dist: gamma, mean: 3ms, cv: .inf} #<<",
     "services.gateway.latency.cv: expected a finite number, got inf"),
    ("duration-of-wrong-type", "            timeout: 2s", "            timeout: [2s] #<<",
     "services.gateway.calls[0].timeout: expected a duration (like 250ms or 2s), got a list"),
    ("duration-infinite", "            timeout: 2s", "            timeout: .inf #<<",
     "services.gateway.calls[0].timeout: expected a finite duration (like 250ms or 2s), got inf"),
    ("not-a-boolean", "{metric: availability, min: 99%}", "{metric: availability, min: 99%, count_degraded: 1} #<<",
     "slos[0].count_degraded: expected true or false, got int 1"),
    ("malformed-bandwidth", FAULT, "{type: bandwidth, target: llm, rate: 10 kilobytes} #<<",
     "faults[0].rate: malformed bandwidth '10 kilobytes'"),
    ("exponential-mean-zero", "{dist: lognormal, median: 3ms, p99: 15ms}", "{dist: exponential, mean: 0s} #<<",
     "services.gateway.latency: an exponential distribution needs mean > 0"),
    ("lognormal-median-zero", "{dist: lognormal, median: 3ms, p99: 15ms}", "{dist: lognormal, median: 0s, p99: 1ms} #<<",
     "services.gateway.latency: a lognormal distribution needs median > 0"),
    ("gamma-mean-zero", "{dist: lognormal, median: 3ms, p99: 15ms}", "{dist: gamma, mean: 0s, cv: 1} #<<",
     "services.gateway.latency: a gamma distribution needs mean > 0"),
    ("users-in-open-workload", "      rate: 10/s\n", "      rate: 10/s\n      users: 5 #<<\n",
     "workload.users: users belongs to a closed workload (model: closed)"),
    ("fault-not-a-mapping", FAULT, "latency #<<", "scenarios.brownout.faults[0]: expected a fault mapping, got the text 'latency'"),
    ("fault-without-type", FAULT, "{target: llm} #<<", "scenarios.brownout.faults[0]: missing required field 'type'"),
    ("slo-not-a-mapping", "{metric: availability, min: 99%}", "availability #<<",
     "slos[0]: expected an SLO mapping, got the text 'availability'"),
    ("slo-without-metric", "{metric: availability, min: 99%}", "{min: 99%} #<<",
     "slos[0]: missing required field 'metric'"),
    ("bad-tagged-scalar", "        replicas: 2", "        replicas: !!int two #<<", "bad value"),
    # user services (image/command, port, health, env) and memory
    ("port-out-of-range", "      cache: {kind: cache}", "      cache: {kind: cache, port: 70000} #<<",
     "services.cache.port: must be at most 65535, got 70000"),
    ("health-not-a-path", "      cache: {kind: cache}", "      cache: {kind: cache, health: healthz} #<<",
     "services.cache.health: an HTTP path starts with '/' and has no spaces, got 'healthz'"),
    ("image-not-text", "      cache: {kind: cache}", "      cache: {kind: cache, image: 5} #<<",
     "services.cache.image: expected a text, got int 5"),
    ("command-empty", "      cache: {kind: cache}", "      cache: {kind: cache, command: ''} #<<",
     "services.cache.command: an empty command: give the program to run"),
    ("command-unbalanced-quote", "      cache: {kind: cache}",
     "      cache: {kind: cache, command: 'redis-server \"x'} #<<",
     "services.cache.command: cannot split the command: No closing quotation"),
    ("command-item-not-text", "      cache: {kind: cache}",
     "      cache: {kind: cache, command: [redis-server, 6379]} #<<",
     "services.cache.command[1]: expected a text, got int 6379 (quote it)"),
    ("command-not-a-list", "      cache: {kind: cache}",
     "      cache: {kind: cache, command: {run: x}} #<<",
     "services.cache.command: expected a list of texts or a command line, got a mapping"),
    ("env-bad-name", "      cache: {kind: cache}", "      cache: {kind: cache, env: {1X: a}} #<<",
     "services.cache.env.1X: an environment variable name uses letters, digits and '_'"),
    ("env-reserved-name", "      cache: {kind: cache}",
     "      cache: {kind: cache, env: {FAULTMESH_LLM_URL: x}} #<<",
     "services.cache.env.FAULTMESH_LLM_URL: FAULTMESH_LLM_URL is set by faultmesh"),
    ("env-port-reserved", "      cache: {kind: cache}", "      cache: {kind: cache, env: {PORT: 1}} #<<",
     "services.cache.env.PORT: PORT is set by faultmesh"),
    ("env-value-not-text", "      cache: {kind: cache}",
     "      cache: {kind: cache, env: {DEBUG: true}} #<<",
     "services.cache.env.DEBUG: expected a text, got a boolean (true) (quote it)"),
    ("env-not-a-mapping", "      cache: {kind: cache}", "      cache: {kind: cache, env: [A=1]} #<<",
     "services.cache.env: expected a mapping NAME: value, got a list"),
    ("callees-share-a-variable", "      cache: {kind: cache}",
     "      cache: {kind: cache, image: c, calls: [{to: a-b}, {to: a.b}]} #<<\n"
     "      a-b: {}\n      a.b: {}",
     "services.cache.calls: calls 'a-b' and 'a.b', whose addresses would both be passed in "
     "FAULTMESH_A_B_URL"),
    ("memory-malformed-size", "      cache: {kind: cache}",
     "      cache: {kind: cache, memory: {base: 64 megs}} #<<",
     "services.cache.memory.base: unknown size unit 'megs'"),
    ("loss-probability-one", FAULT, "{type: loss, target: llm, probability: 1} #<<",
     "faults[0].probability: must be less than 1"),
    ("loss-probability-zero", FAULT, "{type: loss, target: llm, probability: 0} #<<",
     "faults[0].probability: must be greater than 0, got 0"),
    ("loss-without-probability", FAULT, "{type: loss, target: gateway->llm} #<<",
     "scenarios.brownout.faults[0]: missing required field 'probability'"),
    ("cpu-fraction-zero", FAULT, "{type: cpu, target: llm, fraction: 0%} #<<",
     "faults[0].fraction: must be greater than 0, got 0%"),
    ("cpu-fraction-above-one", FAULT, "{type: cpu, target: llm, fraction: 1.5} #<<",
     "faults[0].fraction: must be at most 1, got 1.5"),
    ("memory-fault-without-memory", FAULT, "{type: memory, target: llm, limit: 256Mi} #<<",
     "faults[0].target: a memory fault needs services.llm.memory"),
    ("memory-limit-zero", FAULT, "{type: memory, target: llm, limit: 0Mi} #<<",
     "faults[0].limit: must be greater than 0, got 0Mi"),
    ("merge-key-not-a-mapping", "      cache: {kind: cache}", "      cache: {kind: cache, <<: 5} #<<",
     "a merge key (<<) needs a mapping or a list of mappings"),
]


@pytest.mark.parametrize("old,new,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_is_reported_with_file_line_path_and_message(old, new, message):
    old, new = (re.sub(r"(?m)^    ", "", t) for t in (old, new))  # cases are over-indented
    assert old in BASE, old
    text = BASE.replace(old, new, 1)
    found = problems_of(text)
    line = marked_line(text) if "#<<" in text else 1
    assert any(message in p for p in found), found
    hit = next(p for p in found if message in p)
    if "#<<" in text:
        assert hit.startswith(f"t.yaml:{line}: "), (hit, line)


def test_every_problem_of_a_file_is_reported_at_once():
    text = (BASE.replace("    workers: 4", "    workers: 0")
            .replace("entry: gateway", "entry: gatway")
            .replace("timeout: 2s", "timeout: 2 parsecs")
            .replace("min: 99%", "min: 150%"))
    found = problems_of(text)
    assert len(found) == 4, found
    assert [p.split(":")[1] for p in found] == sorted([p.split(":")[1] for p in found], key=int)


def test_unreadable_and_empty_inputs(tmp_path):
    assert problems_of("") == ["t.yaml:1: file is empty (expected a topology mapping)"]
    assert problems_of("# only a comment\n")[0].endswith("file is empty (expected a topology "
                                                         "mapping)")
    assert "the top level must be a mapping" in problems_of("- a\n- b\n")[0]
    assert "the top level must be a mapping" in problems_of("just text\n")[0]
    assert problems_of("a: [1,\n")[0].startswith("t.yaml:2: not valid YAML")
    with pytest.raises(TopologyError, match="no such file"):
        topologies.load(tmp_path / "missing.yaml")
    with pytest.raises(TopologyError, match="is a directory"):
        topologies.load(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(TopologyError, match="not UTF-8"):
        topologies.load(binary)


def test_alias_bomb_is_refused_quickly_without_memory_blowup():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    found = problems_of("\n".join(lines) + "\n")
    assert "alias bomb" in found[0]


def test_aliases_and_merge_keys_within_reason_are_fine():
    text = BASE.replace("slos:", "x-retry: &retry {attempts: 2}\nslos:")
    assert "x-retry: unknown field" in problems_of(text)[0]
    text = BASE.replace("{to: vectordb, timeout: 1s}", "&vdb {to: vectordb, timeout: 1s}")
    text = text.replace("{to: cache, p: 0.5}", "{<<: *vdb, to: cache}")
    topo = topologies.loads(text)
    assert topo.services["gateway"].calls[1].parallel[1].timeout == 1.0


def test_override_paths_are_checked(base_text):
    topo = topologies.loads(base_text)
    assert topologies.override(topo, {"services.llm.replicas": "4"}).services["llm"].replicas == 4
    assert topologies.override(topo, {"services.gateway.calls.0.timeout": "5s"}).services[
        "gateway"].calls[0].timeout == 5.0
    with pytest.raises(TopologyError, match=r"services\.lm: --set services\.lm\.replicas: no "
                                            r"such field \(did you mean 'llm'\?\)"):
        topologies.override(topo, {"services.lm.replicas": 4})
    with pytest.raises(TopologyError, match="must be at least 0, got -2"):
        topologies.override(topo, {"services.llm.replicas": "-2"})


def test_validate_command_exit_codes_and_one_line_per_problem(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("    workers: 4", "    workers: 0").replace(
        "entry: gateway", "entry: nope"))
    cmd = [sys.executable, "-m", "faultmesh", "validate"]
    ok = subprocess.run([*cmd, str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok" in ok.stdout
    fail = subprocess.run([*cmd, str(good), str(bad)], capture_output=True, text=True)
    assert fail.returncode == 2
    lines = fail.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{bad}:") for line in lines)
    assert "Traceback" not in fail.stderr
    missing = subprocess.run([*cmd, os.path.join(str(tmp_path), "nope.yaml")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_unreachable_services_are_warned_about_not_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(BASE.replace("  cache: {kind: cache}", "  cache: {kind: cache}\n"
                                 "  orphan: {}"))
    run = subprocess.run([sys.executable, "-m", "faultmesh", "validate", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 0
    assert "services.orphan: not reachable from the entry" in run.stderr


def test_empirical_samples_file_problems(tmp_path):
    def load_with(csv_text):
        (tmp_path / "s.csv").write_text(csv_text)
        path = tmp_path / "t.yaml"
        path.write_text(BASE.replace("{dist: lognormal, median: 3ms, p99: 15ms}",
                                     "{dist: empirical, file: s.csv}"))
        return topologies.load(path)

    topo = load_with("latency_s\n0.01\n0.03\n")
    assert topo.services["gateway"].latency.samples == (0.01, 0.03)
    with pytest.raises(TopologyError, match=r"s.csv:3: not a number: 'fast'"):
        load_with("latency_s\n0.01\nfast\n")
    with pytest.raises(TopologyError, match="needs non-negative numbers, one per row"):
        load_with("0.01\n-0.5\n")


def test_oversized_file_is_refused(tmp_path):
    from topologies.yamltree import MAX_BYTES

    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_BYTES)
    with pytest.raises(TopologyError, match="file is larger than"):
        topologies.load(path)


def test_override_into_a_list_or_scalar_is_checked(base_text):
    topo = topologies.loads(base_text)
    with pytest.raises(TopologyError, match="no item 7 in this list"):
        topologies.override(topo, {"services.gateway.calls.7.timeout": "1s"})
    with pytest.raises(TopologyError, match="not a mapping, cannot set 'x'"):
        topologies.override(topo, {"services.gateway.replicas.x": 1})


def test_user_service_fields_and_their_environment(base_text):
    from topologies.userservice import dependency_env, env_name, is_user_service

    text = base_text.replace("  cache: {kind: cache}", "  cache: {kind: cache}\n  search-v2: {}")
    text = text.replace("  vectordb: {kind: vectordb, latency: 5ms}",
                        "  vectordb: {kind: vectordb, latency: 5ms, image: my/vdb:1, "
                        "command: 'python -m vdb --index \"a b\"', port: 9000, health: /ready, "
                        "env: {INDEX: corpus, THREADS: 4}, memory: {base: 64Mi, per_request: 1Mi},"
                        " calls: [{to: search-v2}]}")
    topo = topologies.loads(text)
    vdb = topo.services["vectordb"]
    assert is_user_service(vdb) and not is_user_service(topo.services["cache"])
    assert vdb.command == ("python", "-m", "vdb", "--index", "a b")
    assert (vdb.port, vdb.health, dict(vdb.env)) == (9000, "/ready",
                                                     {"INDEX": "corpus", "THREADS": "4"})
    assert (vdb.memory.base, vdb.memory.per_request) == (64 * 2**20, 2**20)
    assert topo.services["cache"].port == 8080 and topo.services["cache"].health == "/healthz"
    assert env_name("search-v2") == "FAULTMESH_SEARCH_V2_URL"
    env = dependency_env(topo, "vectordb", {"search-v2": ["127.0.0.1:7001", "10.0.0.2:7002"]}, 1)
    assert env == {"INDEX": "corpus", "THREADS": "4",
                   "FAULTMESH_SEARCH_V2_URL": "http://127.0.0.1:7001",
                   "FAULTMESH_SEARCH_V2_URLS": "http://127.0.0.1:7001,http://10.0.0.2:7002",
                   "FAULTMESH_SERVICE": "vectordb", "FAULTMESH_REPLICA": "1", "PORT": "9000"}
    # the resolved topology written back reads the same
    assert topologies.loads(topologies.dump(topo)).services == topo.services
