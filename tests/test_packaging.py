"""The package as installed from a wheel: every code package (subpackages too) is listed in
pyproject.toml, and the data files the code reads at run time are declared."""

from __future__ import annotations

import fnmatch
import os
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = ("topologies", "simulator", "chaos", "loadtests", "reports", "faultmesh")


def _config() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        return tomllib.load(fh)


def test_every_package_and_subpackage_is_listed():
    listed = set(_config()["tool"]["setuptools"]["packages"])
    found = set()
    for top in CODE:
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            if "__init__.py" in files and "__pycache__" not in dirpath:
                found.add(os.path.relpath(dirpath, ROOT).replace(os.sep, "."))
    assert found | {"reports.templates"} == listed  # templates: a data-only package


def test_runtime_data_files_are_package_data():
    data = _config()["tool"]["setuptools"]["package-data"]
    assert "*.yaml" in data["topologies"]
    templates = os.listdir(os.path.join(ROOT, "reports", "templates"))
    patterns = data["reports.templates"]
    assert templates and all(any(fnmatch.fnmatch(t, p) for p in patterns) for t in templates)


def test_console_script_and_python_version():
    project = _config()["project"]
    assert project["scripts"]["faultmesh"] == "faultmesh.cli:main"
    assert project["requires-python"] == ">=3.11"
    names = {d.split(">")[0].split("[")[0] for d in project["dependencies"]}
    assert {"simpy", "networkx", "pandas", "matplotlib", "pyyaml", "jinja2", "locust",
            "toxiproxy-python", "dask"} <= names
