"""Sim against live: every bundled topology x every scenario, both engines, side by side.

Each scenario is shortened the same way for both engines so a full table takes tens of
minutes, not hours: the run lasts ``--duration`` (default 60 s) after a ``--warmup``
(default 10 s), every fault starts at ``--fault-at`` (default 20 s) and lasts at most
``--fault-for`` (default 25 s; a kill still comes back after the service's ``restart``).
The load is the topology's own (moderate on purpose), capped at ``--max-rate`` requests per
second for open workloads and ``--max-users`` users for closed ones, so the live side runs
on this 2-core machine without the load generator falling behind.

For every row it prints p50, p99, availability and error rate of both engines over the
measured requests, and the same inside the fault windows (faults.csv, as each engine ran
them) and outside them. A row is within target when availability agrees within
1 percentage point and p50 within 15 %; rows outside say why when the reason is known
(``--reasons`` file), and the table is written as Markdown (``--markdown FILE``) for
docs/live.md.

    .venv/bin/python benchmarks/sim_vs_live.py                      # everything (~45 min)
    .venv/bin/python benchmarks/sim_vs_live.py --only rag-chat --duration 40
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import topologies  # noqa: E402
from topologies.model import Scenario, Topology  # noqa: E402

BUNDLED = ("rag-chat", "agent", "recommender", "router")


def shortened(t: Topology, args: argparse.Namespace) -> Topology:
    """The topology with a short workload and every scenario's faults moved into it."""
    w = t.workload
    changes: dict = {"duration": args.duration, "warmup": args.warmup}
    if w.model == "open" and w.profile:
        peak = max(p.rate for p in w.profile)
        changes.update(profile=None, rate=min(peak, args.max_rate))
    elif w.model == "open":
        changes["rate"] = min(float(w.rate or 0.0), args.max_rate)
    else:
        changes["users"] = min(int(w.users or 1), args.max_users)
    scenarios = {}
    for name, sc in t.scenarios.items():
        faults = []
        for f in sc.faults:
            length = f.duration if f.duration is not None else args.duration - args.fault_at
            extra = {}
            if f.type == "rollout" and f.startup:  # every batch within the fault window
                spec = t.services[f.target]
                n = spec.autoscale.max if spec.autoscale is not None else spec.replicas
                batches = -(-min(n, max(spec.replicas, 1)) // max(1, int(f.batch or 1)))
                extra["startup"] = min(f.startup, args.fault_for / batches)
            faults.append(dataclasses.replace(
                f, start=args.fault_at,
                duration=None if f.duration is None else min(length, args.fault_for),
                **extra))
        scenarios[name] = Scenario(name, sc.description, tuple(faults))
    return dataclasses.replace(t, workload=dataclasses.replace(w, **changes),
                               scenarios=topologies.model.FrozenMap(scenarios))


def figures(directory: str) -> dict[str, float]:
    """p50, p99, availability, error rate: all, inside and outside the fault windows."""
    with open(os.path.join(directory, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    req = pd.read_csv(os.path.join(directory, "requests.csv"))
    req["error"] = req["error"].astype("string").fillna("")
    faults = pd.read_csv(os.path.join(directory, "faults.csv"))
    warmup, duration = float(summary["warmup"]), float(summary["duration"])
    req = req[(req["start"] >= warmup) & (req["start"] < duration)]
    inside = np.zeros(len(req), bool)
    start = req["start"].to_numpy()
    for _, f in faults.iterrows():
        end = f["end"] if not pd.isna(f["end"]) else math.inf
        inside |= (start >= f["start"]) & (start < end)
    out: dict[str, float] = {}
    for label, mask in (("all", np.ones(len(req), bool)), ("in", inside), ("out", ~inside)):
        part = req[mask]
        answered = part[part["error"] != "unfinished"]
        ok = answered[answered["ok"].astype(bool)]
        out[f"{label}_n"] = len(answered)
        out[f"{label}_avail"] = len(ok) / len(answered) if len(answered) else math.nan
        out[f"{label}_p50"] = float(ok["latency"].quantile(0.5)) if len(ok) else math.nan
        out[f"{label}_p99"] = float(ok["latency"].quantile(0.99)) if len(ok) else math.nan
    out["error_rate"] = 1.0 - out["all_avail"] if not math.isnan(out["all_avail"]) else math.nan
    out["notes"] = "; ".join(summary.get("notes") or [])
    return out


def run_pair(t: Topology, scenario: str, seed: int, root: str,
             runtime: str = "process") -> tuple[dict, dict, float]:
    from faultmesh.runs import live_run, simulate_run

    sim_dir = os.path.join(root, t.name, scenario, "sim")
    live_dir = os.path.join(root, t.name, scenario, "live")
    simulate_run(t, scenario, sim_dir, seed=seed, report=False)
    started = time.perf_counter()
    live_run(t, scenario, live_dir, seed=seed, report=False, runtime=runtime)
    return figures(sim_dir), figures(live_dir), time.perf_counter() - started


def pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.2f} %"


def sec(x: float) -> str:
    return "–" if math.isnan(x) else (f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s")


def verdict(s: dict, lv: dict) -> tuple[bool, str]:
    d_avail = abs(s["all_avail"] - lv["all_avail"])
    p50s, p50l = s["all_p50"], lv["all_p50"]
    d_p50 = abs(p50l - p50s) / p50s if p50s and not math.isnan(p50s) else math.nan
    ok = d_avail <= 0.01 and (math.isnan(d_p50) or d_p50 <= 0.15)
    return ok, f"Δavail {100 * d_avail:.2f} pp, Δp50 {100 * d_p50:.0f} %"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", help="a bundled topology (repeatable)")
    ap.add_argument("--scenario", action="append", help="only these scenarios (repeatable)")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--fault-at", type=float, default=20.0)
    ap.add_argument("--fault-for", type=float, default=25.0)
    ap.add_argument("--max-rate", type=float, default=10.0)
    ap.add_argument("--max-users", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runtime", choices=("process", "docker"), default="process",
                    help="the live engine's runtime (docker: containers, and the container "
                    "faults loss, cpu, memory)")
    ap.add_argument("--out", help="keep the result directories here")
    ap.add_argument("--markdown", help="write the table here as Markdown")
    ap.add_argument("--reasons", help="JSON {\"topology/scenario\": \"why it differs\"}")
    args = ap.parse_args(argv)
    reasons = {}
    if args.reasons:
        with open(args.reasons, encoding="utf-8") as fh:
            reasons = json.load(fh)
    root = args.out or tempfile.mkdtemp(prefix="faultmesh-simlive-")
    header = ("| topology | scenario | sim p50 | live p50 | sim p99 | live p99 | sim avail | "
              "live avail | in faults: sim / live avail | outside: sim / live avail | "
              "within target |")
    rows = [header, "|" + "---|" * 11]
    print(header, flush=True)
    misses = 0
    for name in args.only or BUNDLED:
        t = shortened(topologies.load(os.path.join(HERE, "..", "topologies", f"{name}.yaml")),
                      args)
        for scenario in ["baseline", *t.scenarios]:
            if args.scenario and scenario not in args.scenario:
                continue
            key = f"{name}/{scenario}"
            kinds = {f.type for f in t.scenario(scenario).faults}
            if args.runtime == "process" and kinds & {"loss", "cpu", "memory"}:
                row = (f"| {name} | {scenario} | | | | | | | | | not run: "
                       f"{', '.join(sorted(kinds & {'loss', 'cpu', 'memory'}))} need "
                       "--runtime docker |")
            else:
                try:
                    s, lv, took = run_pair(t, scenario, args.seed, root, args.runtime)
                except Exception as exc:  # noqa: BLE001 - one failed row, the table goes on
                    row = f"| {name} | {scenario} | | | | | | | | | failed: {exc} |"
                    misses += 1
                else:
                    ok, how = verdict(s, lv)
                    misses += not ok
                    why = "" if ok else f" — {reasons.get(key, 'not explained yet')}"
                    row = (f"| {name} | {scenario} | {sec(s['all_p50'])} | "
                           f"{sec(lv['all_p50'])} | {sec(s['all_p99'])} | "
                           f"{sec(lv['all_p99'])} | {pct(s['all_avail'])} | "
                           f"{pct(lv['all_avail'])} | {pct(s['in_avail'])} / "
                           f"{pct(lv['in_avail'])} | {pct(s['out_avail'])} / "
                           f"{pct(lv['out_avail'])} | {'yes' if ok else 'no'} ({how}){why} |")
            rows.append(row)
            print(row, flush=True)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write("\n".join(rows) + "\n")
    print(f"rows outside the target: {misses}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
