"""What every page needs, without Panel: the project, who is signed in, the registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import capture
from ..project import find_project
from ..registry.identity import Identity, identity_for
from ..registry.releases import Registry
from ..store import Store
from .credentials import Credentials


@dataclass(frozen=True)
class DashboardContext:
    root: Path
    credentials: Credentials | None  # None: --dev, no login
    dev: bool = False

    def identity(self, user: str | None) -> Identity | None:
        """The signed-in user's identity; in --dev the OS user with the config's roles."""
        project = find_project(self.root)
        if self.credentials is None:
            return identity_for(capture.user(), project) if self.dev else None
        if user is None or user not in self.credentials.users:
            return None
        return Identity(user=user, roles=frozenset(self.credentials.roles(user)))

    @contextmanager
    def registry(self) -> Iterator[Registry]:
        project = find_project(self.root)
        store = Store(project.db_path, stale_after_seconds=project.tracking.stale_after_seconds)
        try:
            yield Registry(project, store)
        finally:
            store.close()
