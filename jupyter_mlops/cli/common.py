"""What every command that reads or writes the store starts with."""

from __future__ import annotations

import argparse

from ..project import Project, find_project
from ..store import Store
from ..tracking import open_project_store


def open_store() -> tuple[Project, Store]:
    """The current project and its store (configured audit key, local filesystem
    checked), migrated if an older version left it behind. In team mode (`[store]
    url`, `MLOPS_URL`) the store is the server's, read through a `RemoteStore`: a
    command that would write it says in one line that only the server writes."""
    from ..remote.store import remote_store_for

    project = find_project()
    remote = remote_store_for(project)
    if remote is not None:
        return project, remote  # type: ignore[return-value]
    return project, open_project_store(project)


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a --limit, --jobs, --last)."""
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative(text: str) -> int:
    """An argparse type: a whole number of at least 0 (an --offset)."""
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
