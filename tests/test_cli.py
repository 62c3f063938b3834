"""The command line as a user meets it: help with examples everywhere, exit codes, no
tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from faultmesh.cli import COMMANDS, build_parser, main

BUILT = [name for name in COMMANDS if name in build_parser()._subparsers._group_actions[0].choices]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "faultmesh", *args], capture_output=True,
                          text=True, timeout=120)


def test_top_level_help_lists_commands_and_exit_codes():
    out = run("--help")
    assert out.returncode == 0
    for name in ("validate", "graph", "schema"):
        assert name in out.stdout
    assert "exit codes" in out.stdout


@pytest.mark.parametrize("command", BUILT)
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_usage_errors_exit_2_without_traceback():
    out = run("validate")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    out = run("no-such-command")
    assert out.returncode == 2
    assert run().returncode == 2


def test_debug_flag_is_accepted_after_the_command(tmp_path):
    out = run("graph", str(tmp_path / "missing.yaml"), "--debug")
    assert "Traceback" not in run("graph", str(tmp_path / "missing.yaml")).stderr
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_schema_command_prints_json_schema():
    import json

    out = run("schema")
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    assert "services" in schema["properties"] and schema["required"]
