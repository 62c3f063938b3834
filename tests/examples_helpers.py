"""Finding the command examples of the documentation: README.md, docs/*.md and the
``examples:`` section of every ``--help`` epilog (tests/test_examples.py runs them,
tests/test_docs.py checks the synopses).

An *example block* is a sequence of commands shown together -- one fenced block of a
Markdown file, one epilog's examples section -- and runs in that order in one working
directory, as a reader would type it: a later line may read what an earlier one wrote.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
from dataclasses import dataclass

import yaml

__all__ = ["ROOT", "Block", "markdown_files", "help_blocks", "markdown_blocks", "all_blocks",
           "is_synopsis", "inline_commands", "inline_blocks", "subparsers", "without_env"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# what a command line of a fenced block starts with ("$ " marks a terminal transcript)
_COMMAND = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S* )*((?:\.venv/bin/)?faultmesh |bash scripts/|"
                      r"(?:\.venv/bin/)?python benchmarks/)")
# environment assignments before a command: FAULTMESH_PROGRESS=off faultmesh ...
_ENV_PREFIX = re.compile(r"^(?:[A-Z_]+=\S* )+")
# a placeholder in a synopsis: TOPOLOGY, RESULT_DIR, NAME, ...
_PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]{2,}\b|/[A-Z]\.")  # TOPOLOGY, topologies/X.yaml


@dataclass(frozen=True)
class Block:
    """Commands shown together, in order; ``where`` names the place for a failure message."""

    where: str
    commands: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.where


def markdown_files() -> list[str]:
    """README.md and every docs/*.md, relative to the repository root."""
    return ["README.md", *sorted(os.path.relpath(p, ROOT)
                                 for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]


def _strip_comment(line: str) -> str:
    """The command without its trailing remark: ``# ...`` or prose after a run of spaces
    (epilogs write ``faultmesh report results/rag      writes results/rag/report.html``)."""
    line = re.split(r"\s{2,}|\s+#", line.strip(), maxsplit=1)[0]
    return line.removeprefix("$ ").strip()


def _joined(lines: list[str]) -> list[str]:
    """Physical lines with backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for line in lines:
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        out.append((pending + line.strip()) if pending else line)
        pending = ""
    return out


def without_env(command: str) -> str:
    """The command without leading ``NAME=value`` environment assignments."""
    return _ENV_PREFIX.sub("", command)


def is_synopsis(command: str) -> bool:
    """A usage line (``faultmesh gate TOPOLOGY|DIR [--junit FILE]``) rather than an example."""
    command = _ENV_PREFIX.sub("", command)
    return bool(_PLACEHOLDER.search(command) or "[" in command or "|" in command)


def subparsers() -> dict[str, argparse.ArgumentParser]:
    """``{"": the faultmesh parser, "sim": its sim subparser, ...}``."""
    from faultmesh.cli import build_parser

    parser = build_parser()
    found = {"": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def help_blocks() -> list[Block]:
    """The examples section of each epilog: every line up to the first blank one is a
    command (``#`` lines are comments)."""
    blocks = []
    for name, parser in subparsers().items():
        epilog = parser.epilog or ""
        if "examples:" not in epilog:
            continue
        section = epilog.split("examples:", 1)[1].lstrip("\n").split("\n\n", 1)[0]
        lines = [_strip_comment(line) for line in _joined(section.splitlines())
                 if line.strip() and not line.strip().startswith("#")]
        blocks.append(Block(f"faultmesh {name} --help".replace("  ", " "), tuple(lines)))
    return blocks


def _workflow_runs(text: str) -> list[str]:
    """The ``run:`` commands of a GitHub Actions workflow shown in a yaml block."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    if not isinstance(doc, dict) or "jobs" not in doc:
        return []
    return [" ".join(step["run"].split()) for job in doc["jobs"].values()
            for step in job.get("steps", []) if isinstance(step.get("run"), str)]


def markdown_blocks() -> list[Block]:
    """Each fenced block of README.md and docs/*.md that shows a command, with its command
    lines (continuations joined, transcripts' ``$ `` and trailing comments removed)."""
    blocks = []
    for rel in markdown_files():
        text = open(os.path.join(ROOT, rel), encoding="utf-8").read()
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
            line_no = text[:m.start()].count("\n") + 1
            if m.group(1) == "yaml":
                lines = [c for c in _workflow_runs(m.group(2)) if _COMMAND.match(c)]
            else:
                lines = [_strip_comment(c) for c in _joined(m.group(2).splitlines())
                         if _COMMAND.match(c.strip())]
            if lines:
                blocks.append(Block(f"{rel}:{line_no}", tuple(lines)))
    return blocks


def inline_blocks() -> list[Block]:
    """Inline spans in running text that are whole examples: they name a bundled topology
    and hold no placeholder (``faultmesh sweep topologies/rag-chat.yaml --set ...``); the
    other spans name a command or show its synopsis (checked by tests/test_docs.py)."""
    found = [(rel, text) for rel, text in inline_commands()
             if "topologies/" in text and not is_synopsis(text)]
    return [Block(f"{rel} (inline {i + 1})", (text,)) for i, (rel, text) in enumerate(found)]


def all_blocks() -> list[Block]:
    return [*help_blocks(), *markdown_blocks(), *inline_blocks()]


def inline_commands() -> list[tuple[str, str]]:
    """``(file, text)`` of each inline code span outside fenced blocks that starts with
    ``faultmesh `` -- references to a command or its synopsis in running text."""
    found = []
    for rel in markdown_files():
        text = open(os.path.join(ROOT, rel), encoding="utf-8").read()
        text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        # the second word is a command or an option: `faultmesh proxy: cannot listen ...` is
        # a message the docs quote, not a command
        found += [(rel, m.group(1)) for m in
                  re.finditer(r"`(faultmesh (?:[a-z|-]+|[A-Z]+)(?: [^`]*)?)`", text)]
    return found
