"""Who is acting: a user name from authentication, and the roles the project gives it."""

from __future__ import annotations

from dataclasses import dataclass

from .. import capture
from ..errors import PermissionDenied
from ..project import Project


@dataclass(frozen=True)
class Identity:
    user: str
    roles: frozenset[str]

    @property
    def is_reviewer(self) -> bool:
        return bool(self.roles & {"reviewer", "admin"})

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def require_reviewer(self, action: str) -> None:
        if not self.is_reviewer:
            raise PermissionDenied(f"{self.user} may not {action}: it takes the reviewer role "
                                   "([users.NAME] roles in .mlops/config.toml)")


def identity_for(user: str, project: Project) -> Identity:
    """Roles of an authenticated user, from the project config."""
    return Identity(user=user, roles=frozenset(project.registry.roles.get(user, ())))


def cli_identity(project: Project) -> Identity:
    """On the command line the OS user is the identity, never a name typed in."""
    return identity_for(capture.user(), project)
