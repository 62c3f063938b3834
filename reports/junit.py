"""JUnit XML for CI test reporters: one testsuite per run, one testcase per SLO.

A violated SLO is a ``<failure>`` whose message carries the measured value and the limit
(``latency_p99 = 3.2 s, limit max 3 s``), so the CI's test view says what broke.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from topologies.files import atomic_write_text

from .formatting import format_metric

if TYPE_CHECKING:
    from .gate import GateOutcome

__all__ = ["junit_xml", "write_junit"]


def junit_xml(outcome: GateOutcome) -> str:
    """The gate outcome as a JUnit XML document."""
    root = ET.Element("testsuites", name="faultmesh gate", tests=str(len(outcome.slos)),
                      failures=str(len(outcome.failures)), errors="0")
    for run in outcome.runs:
        r = run.result
        suite = ET.SubElement(root, "testsuite", name=f"{r.name}/{run.label}",
                              tests=str(len(run.slos)),
                              failures=str(sum(not s.passed for s in run.slos)), errors="0",
                              skipped=str(sum(s.skipped for s in run.slos)), time="0")
        props = ET.SubElement(suite, "properties")
        for key, value in (("engine", r.engine), ("scenario", r.scenario),
                           ("seed", "" if r.seed is None else str(r.seed)),
                           ("result_dir", r.path)):
            ET.SubElement(props, "property", name=key, value=value)
        for s in run.slos:
            case = ET.SubElement(suite, "testcase", name=f"{s.name}: {s.description}",
                                 classname=f"faultmesh.{r.name}.{r.scenario}", time="0")
            text = (f"{s.metric} = {format_metric(s.metric, s.value)}, limit {s.op} "
                    f"{format_metric(s.metric, s.limit)}"
                    + ("" if s.window == "all" else f" ({s.window} window)"))
            if s.skipped:
                ET.SubElement(case, "skipped", message=s.note)
            elif s.passed:
                ET.SubElement(case, "system-out").text = text
            else:
                failure = ET.SubElement(case, "failure", message=text, type="SLOViolation")
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
