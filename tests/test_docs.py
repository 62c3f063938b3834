"""The documentation stands alone and says what the code does.

* Nothing in README.md, docs/, ``--help``, notebooks, report templates, scripts or the
  packages' sources points outside the repository (a design file elsewhere, a sibling
  folder, a web address); web addresses only as 127.0.0.1/localhost examples.
* Every relative link of README.md and docs/ resolves to a file (and to a heading, when it
  names one), and every repository path the docs name exists.
* Every synopsis names real commands and options; docs/commands.md covers every command and
  option, docs/topology-format.md every field of the file, docs/results.md every column and
  error word; topology examples in the docs are valid.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re

import pytest
from examples_helpers import (
    ROOT,
    all_blocks,
    inline_commands,
    is_synopsis,
    markdown_files,
    subparsers,
)

PACKAGES = ("topologies", "simulator", "chaos", "loadtests", "reports", "faultmesh")
_OUTSIDE = re.compile(r"DESIGN(\.md|'s\b|\b)|\.\./shared|/work/")
_URL = re.compile(r"\bhttps?://[^\s)\"'<>`\]]+")
# allowed: this machine, or an address the code fills in (http://{host}:{port}, HOST:PORT)
_LOCAL_URL = re.compile(r"^https?://(127\.0\.0\.1|localhost|\[::1\]|\{|HOST\b)")
# JSON Schema identifiers, not links: the meta-schema every validator knows, and the
# schema's own $id (topologies/schema.py); both are names, nothing fetches them
_IDENTIFIERS = ("https://json-schema.org/draft/2020-12/schema",
                "https://faultmesh.dev/schema/topology-v1.json")


def _read(rel: str) -> str:
    return open(os.path.join(ROOT, rel), encoding="utf-8").read()


def _help_texts() -> dict[str, str]:
    """Every text ``--help`` shows: descriptions, epilogs and option help, per command."""
    texts = {}
    for name, parser in subparsers().items():
        parts = [parser.description or "", parser.epilog or ""]
        parts += [a.help or "" for a in parser._actions if isinstance(a.help, str)]
        texts[f"faultmesh {name} --help"] = "\n".join(parts)
    return texts


def _texts() -> dict[str, str]:
    """Where a reader or a user looks: docs, help, notebooks, templates, scripts and code."""
    texts = {rel: _read(rel) for rel in markdown_files()}
    texts.update(_help_texts())
    patterns = ["notebooks/*", "reports/templates/*", "scripts/*", "benchmarks/*.py",
                "pyproject.toml", *(f"{p}/**/*.py" for p in PACKAGES)]
    for pattern in patterns:
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            if os.path.isfile(path):
                texts[os.path.relpath(path, ROOT)] = open(path, encoding="utf-8").read()
    return texts


def test_nothing_points_outside_the_repository():
    found = []
    for where, text in _texts().items():
        for m in _OUTSIDE.finditer(text):
            line = text[:m.start()].count("\n") + 1
            found.append(f"{where}:{line}: {m.group(0)}")
        for m in _URL.finditer(text):
            url = m.group(0)
            if not _LOCAL_URL.match(url) and url not in _IDENTIFIERS:
                line = text[:m.start()].count("\n") + 1
                found.append(f"{where}:{line}: {url}")
    assert not found, "points outside the repository:\n" + "\n".join(found)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
        out.add(slug.replace(" ", "-"))
    return out


def test_every_relative_link_resolves():
    broken = []
    for rel in markdown_files():
        text = _read(rel)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address: the test above judges it
            path, _, anchor = target.partition("#")
            file = os.path.normpath(os.path.join(os.path.dirname(rel), path)) if path else rel
            if not os.path.exists(os.path.join(ROOT, file)):
                broken.append(f"{rel}: {target}: no such file")
            elif anchor and file.endswith(".md") and anchor not in _anchors(_read(file)):
                broken.append(f"{rel}: {target}: no such heading in {file}")
    assert not broken, "\n".join(broken)


def test_repository_paths_named_in_the_docs_exist():
    named = set()
    for rel in markdown_files():
        named |= set(re.findall(r"\b((?:benchmarks|scripts|tests|topologies|notebooks)/"
                                r"[\w.-]+\.(?:py|sh|yaml|ipynb))\b", _read(rel)))
    named = {p for p in named if not re.search(r"/[A-Z_]+\.\w+$", p)}  # topologies/X.yaml
    missing = sorted(p for p in named if not os.path.exists(os.path.join(ROOT, p)))
    assert named and not missing, f"named in the docs, not in the repository: {missing}"


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _synopses() -> list[tuple[str, str]]:
    found = [(b.where, c) for b in all_blocks() for c in b.commands if is_synopsis(c)]
    return found + inline_commands()


@pytest.mark.parametrize("where,text", _synopses(), ids=lambda x: x[:60])
def test_synopses_name_real_commands_and_options(where, text):
    parsers = subparsers()
    words = text.split()
    commands = words[1].split("|") if len(words) > 1 and not words[1].startswith("-") else [""]
    if commands == ["COMMAND"]:
        commands = [""]  # `faultmesh COMMAND --help`: any command
    for command in commands:
        assert command in parsers, f"{where}: {text}: no command {command!r}"
        options = _options(parsers[command]) | _options(parsers[""])
        for option in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", " ".join(words[2:])):
            assert option in options, f"{where}: {text}: faultmesh {command} has no {option}"


def test_commands_md_covers_every_command_and_option():
    text = _read("docs/commands.md")
    sections = dict(re.findall(r"^## faultmesh (\w+)\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    intro = text.split("\n## ", 1)[0]
    for name, parser in subparsers().items():
        body = intro if name == "" else sections.get(name)
        assert body is not None, f"docs/commands.md has no section '## faultmesh {name}'"
        for option in _options(parser) - {"-h", "--help"}:
            assert f"`{option}" in body or f"{option}`" in body or f"/{option}" in body, \
                f"docs/commands.md, faultmesh {name}: {option} is not described"


def _schema_fields(node: dict, schema: dict, seen: set[str]) -> set[str]:
    names: set[str] = set()
    if "$ref" in node:
        ref = node["$ref"].split("/")[-1]
        if ref in seen:
            return names
        seen.add(ref)
        node = schema.get("$defs", {}).get(ref, {})
    for key, sub in node.get("properties", {}).items():
        names.add(key)
        names |= _schema_fields(sub, schema, seen)
    for key in ("additionalProperties", "items"):
        if isinstance(node.get(key), dict):
            names |= _schema_fields(node[key], schema, seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            names |= _schema_fields(sub, schema, seen)
    return names


def test_topology_format_describes_every_field_fault_type_and_metric():
    from topologies.model import FAULT_TYPES, SLO_METRICS
    from topologies.schema import json_schema

    schema = json_schema()
    text = _read("docs/topology-format.md")
    reference = text.split("## Reference", 1)[1]
    fields = _schema_fields(schema, schema, set())
    assert len(fields) > 60, sorted(fields)
    missing = sorted(f for f in fields | set(FAULT_TYPES) | set(SLO_METRICS)
                     if f"`{f}`" not in reference and f"{f}:" not in reference)
    assert not missing, f"docs/topology-format.md does not describe: {missing}"


def test_results_md_describes_every_column_and_error_word():
    from simulator.results import (
        CALL_COLUMNS,
        FAULT_COLUMNS,
        REQUEST_COLUMNS,
        TIMESERIES_COLUMNS,
    )
    from topologies.outcomes import ERROR_WORDS

    text = _read("docs/results.md")
    for title, columns in (("requests.csv", REQUEST_COLUMNS), ("calls.csv", CALL_COLUMNS),
                           ("timeseries.csv", TIMESERIES_COLUMNS), ("faults.csv", FAULT_COLUMNS)):
        section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
        missing = [c for c in columns if f"`{c}`" not in section]
        assert not missing, f"docs/results.md, {title}: no {missing}"
    words = text.split("## Error words", 1)[1].split("\n## ", 1)[0]
    missing = [w for w in ERROR_WORDS if w and f"`{w}`" not in words]
    assert not missing, f"docs/results.md: error words not described: {missing}"


def test_topology_examples_in_the_docs_are_valid():
    import topologies

    checked = 0
    for rel in markdown_files():
        for block in re.findall(r"^```yaml\n(.*?)^```", _read(rel), re.S | re.M):
            if re.search(r"^entry:", block, re.M) and re.search(r"^services:", block, re.M):
                topologies.loads(block, f"{rel} (example)")  # raises with every problem
                checked += 1
    assert checked, "no topology example found in the docs"


def test_summary_keys_of_a_run_are_documented(tmp_path):
    """Each top-level key of a real summary.json is named in docs/reports.md."""
    import faultmesh

    topo = faultmesh.load(os.path.join(ROOT, "topologies", "rag-chat.yaml"))
    summary = faultmesh.simulate_run(topo, "llm-brownout", str(tmp_path / "run"),
                                     duration=90.0, report=False)
    text = _read("docs/reports.md")
    missing = sorted(k for k in summary
                     if not any(f in text for f in (f"`{k}`", f"`{k}[", f'"{k}"')))
    assert not missing, f"summary.json keys not in docs/reports.md: {missing}"
    json.dumps(summary)
