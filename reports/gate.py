"""The CI gate over result directories: every SLO of every scenario judged, one verdict.

:func:`gate` reads result directories of either engine (a directory holding summary.json,
or a directory of such directories), evaluates each run's SLOs (:mod:`reports.slo`),
and returns a :class:`GateOutcome` whose ``exit_code`` is 0 when every SLO holds and 1 when
any fails. A partial (interrupted) run is no verdict: it describes only the part that ran,
so it makes the exit code 3 (the run is incomplete) unless ``allow_partial``, which judges it
as it stands, still labelled partial. A run that measured no request is no verdict whatever
the flags (exit 3, the reason in the table and the JUnit). :func:`markdown` renders it for
people (and ``$GITHUB_STEP_SUMMARY``); :mod:`reports.junit` renders it for CI test
reporters. Running the simulator first is the ``faultmesh gate`` command's job: this package
never imports an engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from topologies.errors import UsageError
from topologies.files import atomic_write_text

from .formatting import format_metric
from .partial import is_partial, partial_text, unmeasured_reason
from .result import Result, is_result_dir, load_result
from .slo import SLOResult, evaluate_slos

__all__ = ["RunVerdict", "GateOutcome", "find_result_dirs", "gate", "markdown",
           "append_step_summary"]

_MAX_DEPTH = 3


@dataclass
class RunVerdict:
    """The SLO verdicts of one run (one scenario, one seed, one engine)."""

    result: Result
    slos: list[SLOResult]

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.slos)

    @property
    def partial(self) -> bool:
        """Whether the run was interrupted (summary.json's ``partial``)."""
        return is_partial(self.result)

    @property
    def unmeasured(self) -> str | None:
        """Why the run measured no request (no verdict on it), or None."""
        return None if self.partial else unmeasured_reason(self.result.summary)

    @property
    def label(self) -> str:
        """``scenario (engine, seed N)``, with ``, partial`` for an interrupted run."""
        seed = self.result.seed
        return (f"{self.result.scenario} ({self.result.engine}"
                + (f", seed {seed}" if seed is not None else "")
                + (", partial" if self.partial else "") + ")")


@dataclass
class GateOutcome:
    """Every run's verdicts; the gate passes when every SLO of every run holds and no run
    is partial (unless ``allow_partial``: then partial runs are judged as they stand)."""

    runs: list[RunVerdict] = field(default_factory=list)
    allow_partial: bool = False

    @property
    def slos(self) -> list[SLOResult]:
        return [s for run in self.runs for s in run.slos]

    @property
    def failures(self) -> list[SLOResult]:
        return [s for s in self.slos if not s.passed]

    @property
    def partial_runs(self) -> list[RunVerdict]:
        """The runs that were interrupted."""
        return [r for r in self.runs if r.partial]

    @property
    def unmeasured_runs(self) -> list[RunVerdict]:
        """The runs that measured no request."""
        return [r for r in self.runs if r.unmeasured]

    def unjudged(self, run: RunVerdict) -> bool:
        """Whether ``run`` gets no verdict: it measured nothing, or it is partial and
        ``allow_partial`` is off."""
        return bool(run.unmeasured) or (run.partial and not self.allow_partial)

    @property
    def incomplete(self) -> bool:
        """Some run gets no verdict (see :meth:`unjudged`): the gate cannot give one."""
        return any(self.unjudged(r) for r in self.runs)

    @property
    def passed(self) -> bool:
        """Every SLO holds and the verdict is complete."""
        return not self.failures and not self.incomplete

    @property
    def exit_code(self) -> int:
        """3 when a run gets no verdict (partial without ``allow_partial``, or nothing
        measured), else 0 when every SLO holds and 1 when any fails."""
        if self.incomplete:
            return 3
        return 0 if self.passed else 1


def find_result_dirs(path: str) -> list[str]:
    """``path`` itself when it holds summary.json, else the result directories below it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file or directory")
    if not os.path.isdir(path):
        raise UsageError(f"{path}: not a result directory")
    if is_result_dir(path):
        return [path]
    found = []
    base = path.rstrip(os.sep).count(os.sep)
    for root, dirs, _files in os.walk(path):
        dirs.sort()
        if is_result_dir(root):
            found.append(root)
            dirs[:] = []
        elif root.count(os.sep) - base >= _MAX_DEPTH:
            dirs[:] = []
    if not found:
        raise UsageError(f"{path}: no summary.json here or in the directories below it; "
                         "give a result directory, a directory of them, or a topology file")
    return found


def gate(paths: list[str], *, scenario: str | None = None, junit: str | None = None,
         allow_partial: bool = False) -> GateOutcome:
    """Judge the SLOs of every run under ``paths`` (``scenario``: only runs of that scenario).

    Writes JUnit XML to ``junit`` when given. A partial (interrupted) run makes the outcome
    incomplete (``exit_code`` 3) unless ``allow_partial``. Raises :class:`UsageError` when
    there is no run to judge or the runs' topologies define no SLOs at all.
    """
    dirs = [d for p in paths for d in find_result_dirs(p)]
    results = [load_result(d) for d in dirs]
    if scenario not in (None, "all"):
        chosen = [r for r in results if r.scenario == scenario]
        if not chosen:
            from topologies.kinds import suggest

            found = sorted({r.scenario for r in results})
            hint = suggest(scenario, found) or f" (found: {', '.join(found)})"
            raise UsageError(f"no result of scenario {scenario!r}{hint}")
        results = chosen
    outcome = GateOutcome([RunVerdict(r, evaluate_slos(r)) for r in results],
                          allow_partial=allow_partial)
    if not outcome.slos:
        raise UsageError("nothing to gate on: the topology.yaml of "
                         + ", ".join(r.path for r in results) + " defines no slos")
    if junit:
        from .junit import write_junit

        write_junit(outcome, junit)
    return outcome


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _verdict(s: SLOResult, run: RunVerdict, unjudged: bool) -> str:
    """The result cell; an SLO of a partial run left unjudged shows what it stands at."""
    if s.skipped:
        return "➖ n/a"
    if run.unmeasured:
        return "⚠️ no request measured"
    if unjudged:
        return f"⚠️ partial ({'pass' if s.passed else 'FAIL'} as it stands)"
    return "✅ pass" if s.passed else "❌ FAIL"


def markdown(outcome: GateOutcome) -> str:
    """A Markdown summary: the verdict line, then one table row per scenario and SLO."""
    n, bad = len(outcome.slos), len(outcome.failures)
    skipped = sum(s.skipped for s in outcome.slos)
    partial = outcome.partial_runs
    if outcome.incomplete:
        without = [r for r in outcome.runs if outcome.unjudged(r)]
        why = " and ".join(w for w, n in (
            ("partial (interrupted)", sum(r.partial for r in without)),
            ("measured no request", sum(bool(r.unmeasured) for r in without))) if n)
        head = (f"### faultmesh gate: ⚠️ INCOMPLETE — {len(without)} of {len(outcome.runs)} "
                f"runs {why}: no verdict (exit 3)")
    elif outcome.passed:
        head = f"### faultmesh gate: ✅ PASS — all {n} SLO checks hold"
    else:
        head = f"### faultmesh gate: ❌ FAIL — {bad} of {n} SLO checks violated"
    if skipped:
        head += f" ({skipped} not applicable)"
    lines = [head, ""]
    for run in partial:
        lines.append(f"- ⚠️ {_cell(run.label)}: {partial_text(run.result)}"
                     + ("; judged as it stands (--allow-partial)" if outcome.allow_partial
                        else "; its figures cover only what ran (--allow-partial judges it)"))
    for run in outcome.unmeasured_runs:
        lines.append(f"- ⚠️ {_cell(run.label)}: {_cell(run.unmeasured or '')}")
    if partial or outcome.unmeasured_runs:
        lines.append("")
    lines += ["| run | SLO | window | measured | limit | result |", "|---|---|---|---:|---:|---|"]
    for run in outcome.runs:
        for s in run.slos:
            sign = "≤" if s.op == "max" else "≥"
            lines.append(
                f"| {_cell(run.label)} | {_cell(s.name)} | {s.window} | "
                f"{_cell(format_metric(s.metric, s.value))} | "
                f"{sign} {_cell(format_metric(s.metric, s.limit))} | "
                f"{_verdict(s, run, outcome.unjudged(run))} |")
    return "\n".join(lines) + "\n"


def append_step_summary(text: str, path: str | None = None) -> str | None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` (or ``path``); the path, or None if unset."""
    path = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    old = ""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
    sep = "\n" if old and not old.endswith("\n") else ""
    atomic_write_text(path, old + sep + text)
    return path
