"""Small helpers of the live engine: a replica's admin API, and CSV reading and writing."""

from __future__ import annotations

import csv
import json
import urllib.request
from typing import Any

__all__ = ["http", "read_csv", "write_rows", "num", "shifted"]


def http(method: str, port: int, path: str, body: dict | None = None,
         timeout: float = 2.0) -> dict:
    """One admin API request to a replica on 127.0.0.1; the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        text = resp.read()
    return json.loads(text) if text else {}


def read_csv(path: str) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts (none when the file does not exist)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


def write_rows(fh: Any, columns: list[str], rows: list[list[Any]]) -> None:
    """A header and rows, floats written as :func:`num` does."""
    out = csv.writer(fh, lineterminator="\n")
    out.writerow(columns)
    out.writerows([[num(v) if isinstance(v, float) else v for v in row] for row in rows])


def num(x: float) -> str:
    """A figure to the microsecond, without trailing zeros."""
    return f"{x:.6f}".rstrip("0").rstrip(".")


def shifted(value: str | None, shift: float) -> str:
    """A time column moved by ``shift`` seconds (empty stays empty)."""
    if value in (None, ""):
        return ""
    return num(float(value) + shift)
