"""JUnit XML for CI test reporters: one testsuite per run, one testcase per SLO.

A violated SLO is a ``<failure>`` whose message carries the measured value and the limit
(``latency_p99 = 3.2 s, limit max 3 s``), so the CI's test view says what broke.

A partial (interrupted) run carries the property ``partial`` = ``true`` and ``, partial`` in
its suite's name; unless the gate allows partial runs, each of its SLOs is an ``<error>``
of type ``PartialRun`` (no verdict: the run is incomplete) instead of a pass or a failure.
A run that measured no request has an ``<error>`` of type ``NoRequestMeasured`` per SLO.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from topologies.files import atomic_write_text

from .formatting import format_metric
from .partial import partial_text

if TYPE_CHECKING:
    from .gate import GateOutcome, RunVerdict

__all__ = ["junit_xml", "write_junit"]


def junit_xml(outcome: GateOutcome) -> str:
    """The gate outcome as a JUnit XML document."""
    def unjudged(run: RunVerdict) -> bool:
        return outcome.unjudged(run)

    def counts(run: RunVerdict) -> tuple[int, int]:
        """(failures, errors) of a run's testcases."""
        bad = sum(not s.passed and not s.skipped for s in run.slos)
        judged = sum(not s.skipped for s in run.slos)
        return (0, judged) if unjudged(run) else (bad, 0)

    total = [counts(run) for run in outcome.runs]
    root = ET.Element("testsuites", name="faultmesh gate", tests=str(len(outcome.slos)),
                      failures=str(sum(f for f, _ in total)),
                      errors=str(sum(e for _, e in total)))
    for run, (failures, errors) in zip(outcome.runs, total, strict=True):
        r = run.result
        suite = ET.SubElement(root, "testsuite", name=f"{r.name}/{run.label}",
                              tests=str(len(run.slos)), failures=str(failures),
                              errors=str(errors),
                              skipped=str(sum(s.skipped for s in run.slos)), time="0")
        props = ET.SubElement(suite, "properties")
        for key, value in (("engine", r.engine), ("scenario", r.scenario),
                           ("seed", "" if r.seed is None else str(r.seed)),
                           ("result_dir", r.path),
                           ("partial", "true" if run.partial else "false")):
            ET.SubElement(props, "property", name=key, value=value)
        why = partial_text(r)
        for s in run.slos:
            case = ET.SubElement(suite, "testcase", name=f"{s.name}: {s.description}",
                                 classname=f"faultmesh.{r.name}.{r.scenario}", time="0")
            text = (f"{s.metric} = {format_metric(s.metric, s.value)}, limit {s.op} "
                    f"{format_metric(s.metric, s.limit)}"
                    + ("" if s.window == "all" else f" ({s.window} window)"))
            if s.skipped:
                ET.SubElement(case, "skipped", message=s.note)
            elif run.unmeasured:
                error = ET.SubElement(case, "error", type="NoRequestMeasured",
                                      message=f"no verdict: {run.unmeasured}")
                error.text = f"run: {run.label}\nresult directory: {r.path}"
            elif unjudged(run):
                error = ET.SubElement(case, "error", type="PartialRun",
                                      message=f"{why}: no verdict (--allow-partial judges it)")
                error.text = (f"as it stands: {text}, {'pass' if s.passed else 'FAIL'}\n"
                              f"run: {run.label}\nresult directory: {r.path}")
            elif s.passed:
                ET.SubElement(case, "system-out").text = text + (f" ({why})" if why else "")
            else:
                failure = ET.SubElement(case, "failure", type="SLOViolation",
                                        message=text + (f" ({why})" if why else ""))
                failure.text = (f"{s.message}\nrun: {run.label}\nresult directory: {r.path}\n"
                                f"raw value: {s.value!r}, raw limit: {s.limit!r}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(outcome: GateOutcome, path: str) -> str:
    """Write the JUnit XML of ``outcome`` to ``path`` (atomically); returns the path."""
    atomic_write_text(path, junit_xml(outcome))
    from .finalize import readable

    readable(path)
    return path
