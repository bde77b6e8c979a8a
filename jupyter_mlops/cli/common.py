"""What every command that reads or writes the store starts with."""

from __future__ import annotations

from ..project import Project, find_project
from ..store import Store
from ..tracking import open_project_store


def open_store() -> tuple[Project, Store]:
    """The current project and its store (configured audit key, local filesystem
    checked), migrated if an older version left it behind."""
    project = find_project()
    return project, open_project_store(project)
