"""What every command that reads or writes the store starts with."""

from __future__ import annotations

from ..project import Project, find_project
from ..store import Store


def open_store() -> tuple[Project, Store]:
    """The current project and its store, migrated if an older version left it behind."""
    project = find_project()
    store = Store(project.db_path, stale_after_seconds=project.tracking.stale_after_seconds)
    if store.needs_migration():
        store.migrate()
    return project, store
