"""A run's recorded environment as a pinned requirements file, and how it differs from
the environment that reads it.

`mlops runs env RUN` prints the requirements so a user can rebuild the run's
environment (`pip install -r`); `--diff` lists each difference from this
Python (`reproduce` will refuse to run on any with `--strict-env`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..store.records import Environment, Run


@dataclass(frozen=True)
class PackageDifference:
    name: str  # "python" for the interpreter
    recorded: str | None  # None: not installed when the run was recorded
    here: str | None  # None: not installed here

    def describe(self) -> str:
        if self.recorded is None:
            return f"{self.name}: not in the run's environment, {self.here} here"
        if self.here is None:
            return f"{self.name}: {self.recorded} in the run's environment, missing here"
        return f"{self.name}: {self.recorded} in the run's environment, {self.here} here"


# What pip reads as a package name (PEP 508) and a version (PEP 440, local part too).
# Anything else in a record (a teammate's, through a team server) could be a pip
# option once written as a requirements line: `-e git+https://...`, `--index-url ...`.
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")


def requirements(run: Run, environment: Environment) -> str:
    """Pinned `name==version` lines, sorted, under a comment naming the run and Python.
    An entry that is not a package name and version is left out, and counted."""
    pinned = sorted((name, version) for name, version in environment.packages.items()
                    if _PACKAGE_NAME.fullmatch(name) and _VERSION.fullmatch(version))
    python = environment.python if _VERSION.fullmatch(environment.python) else "(unreadable)"
    lines = [f"# run {run.id} ({run.uuid}) was recorded with Python {python}",
             f"# environment {environment.digest}"]
    skipped = len(environment.packages) - len(pinned)
    if skipped:
        lines.append(f"# left out: {skipped} recorded entries that are not a package name "
                     "and version (they could be read as pip options)")
    lines += [f"{name}=={version}" for name, version in pinned]
    return "\n".join(lines) + "\n"


def differences(recorded: Environment, here: Environment) -> list[PackageDifference]:
    """Every difference, the interpreter first, then packages by name."""
    found = []
    if recorded.python != here.python:
        found.append(PackageDifference("python", recorded.python, here.python))
    for name in sorted(set(recorded.packages) | set(here.packages)):
        old, new = recorded.packages.get(name), here.packages.get(name)
        if old != new:
            found.append(PackageDifference(name, old, new))
    return found
