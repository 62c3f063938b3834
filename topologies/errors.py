"""The one exception hierarchy of faultmesh.

Every package raises subclasses of :class:`FaultmeshError`; the CLI maps them to exit codes
(``TopologyError`` -> 2, ``RunError`` -> 3). It lives in ``topologies`` because every other
package depends on this one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FaultmeshError", "Problem", "TopologyError", "UsageError", "RunError"]


class FaultmeshError(Exception):
    """Root of every error faultmesh raises on purpose."""

    exit_code = 1


class UsageError(FaultmeshError):
    """The user asked for something that cannot be done (a bad option or argument)."""

    exit_code = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input file, located as precisely as the input allows."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class TopologyError(UsageError):
    """A topology file (or an override of one) is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]):
        self.problems = tuple(sorted(set(problems), key=lambda p: (p.file, p.line, p.path)))
        super().__init__("\n".join(str(p) for p in self.problems))


class RunError(FaultmeshError):
    """The environment stopped a run: a port taken, a process that won't start, no docker."""

    exit_code = 3
