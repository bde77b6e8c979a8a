"""What every page needs, without Panel: the project (or, beside a team server, the
server's store and rules), who is signed in, the registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import capture
from ..project import find_project
from ..registry.identity import Identity, identity_for
from ..registry.releases import Registry
from ..store import Store
from .authenticator import Authenticator

if TYPE_CHECKING:
    from .hub import HubSignIn
    from .team import TeamServerSide, TokenAuthenticator


@dataclass(frozen=True)
class DashboardContext:
    """Shared by every page of one dashboard process: where the project is, who signs in.

    Beside a team server, `server` is set and `auth` is its `TokenAuthenticator`
    (or, as a JupyterHub service, `HubSignIn`): the pages read and decide on the
    server's database, as the token's (or the Hub login's) user.
    """

    root: Path
    auth: Authenticator | TokenAuthenticator | HubSignIn | None  # None: --dev, no login
    dev: bool = False
    server: TeamServerSide | None = None

    def identity(self, login: str | None) -> Identity | None:
        """Who a page's session is, with roles from the project's config.toml.

        `login` is the session's signed cookie (`auth.session_user()`); it names
        a user only while that session is live. Roles come from `[users.NAME]
        roles` in `.mlops/config.toml`, the one source of roles (the CLI reads
        it too). In --dev: the OS user with their configured roles. Beside a
        team server: the user and roles of the token the session signed in with.
        """
        if self.server is not None:  # the user and roles the server would see
            return self.auth.identity_for_cookie(login)  # type: ignore[union-attr]
        project = find_project(self.root)
        if self.auth is None:
            return identity_for(capture.user(), project) if self.dev else None
        user = self.auth.user_for_cookie(login)
        return None if user is None else identity_for(user, project)

    @contextmanager
    def registry(self) -> Iterator[Registry]:
        if self.server is not None:
            with self.server.registry() as registry:
                yield registry
            return
        project = find_project(self.root)
        store = Store.for_project(project)
        try:
            yield Registry(project, store)
        finally:
            store.close()
