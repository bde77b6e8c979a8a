"""The dashboard beside a team server (`mlops server dashboard`): the server's database,
its registry rules, and sign-in with a team token.

The dashboard then acts as the server does: it opens the store named in the
server home's `server.toml` (PostgreSQL or SQLite) with the home's audit key,
judges releases with the rules of the home's `registry.toml`
(`teamserver.governance.registry_for`, the function the server's routes use),
and knows people by their token (`api_tokens`): the token's user is who
approves, its roles are what that user may do. No credentials file, no
`[users.*]` roles: the server's tokens are the one source of identity.

A session remembers which token opened it and looks the token up again on every
request, so revoking a token (`mlops server token revoke ID`) or its expiry
ends the dashboard sessions it opened at once. Sessions live in the process's
memory, as with passwords: a restart signs everyone out.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import MlopsError, NotFound
from ..store import Store
from ..store.tokens import Token
from ..teamserver.home import ServerHome
from .authenticator import SignIn, TokenSessions
from .sessions import SessionStore
from .throttle import PER_ADDRESS, Throttle

MAX_TOKEN = 200
log = logging.getLogger("jupyter_mlops.dashboard")


@dataclass(frozen=True)
class TeamServerSide:
    """The server's home and its store, opened once for the dashboard process (a `Store`
    may be shared by threads; on PostgreSQL a lost connection is reopened by the next
    call)."""

    home: ServerHome
    store: Store

    @classmethod
    def open(cls, home: ServerHome) -> TeamServerSide:
        """Open the store of `home`; raises `StoreUnavailable` when it can't be reached."""
        return cls(home, home.open_store())

    @property
    def artifacts_location(self) -> str:
        """The server's blob store: a folder, or an fsspec URL."""
        return self.home.config.artifacts

    @contextmanager
    def registry(self) -> Iterator[Any]:  # -> Registry
        """The server's `Registry`: its store, the rules of its `registry.toml`."""
        from ..teamserver.governance import registry_for

        yield registry_for(self.home.path, self.artifacts_location, self.store)

    def close(self) -> None:
        self.store.close()


class TokenAuthenticator(TokenSessions):
    """Sign-in with a team token: the token's user and roles, checked against the
    server's store at sign-in and at every request after.

    Wrong tokens are throttled per address, as passwords are (a token is 256 random
    bits, so this guards the database from load more than the tokens from guessing).
    """

    login_fields = ('<label>Team token <input name="token" type="password" '
                    'autocomplete="off" autofocus></label>')
    refused_message = ("That token is wrong, revoked or expired: ask the server's admin for "
                       "a new one (`mlops server token create`).")

    def __init__(self, server: TeamServerSide, sessions: SessionStore | None = None,
                 per_address: Throttle | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.server = server
        self.sessions = SessionStore(clock=clock) if sessions is None else sessions
        self.per_address = (Throttle(PER_ADDRESS, clock=clock) if per_address is None
                            else per_address)
        self.clock = clock
        # Sessions live in memory only, so a secret per process loses nothing.
        self.cookie_secret = secrets.token_urlsafe(48)

    def __repr__(self) -> str:  # never the cookie secret
        return f"TokenAuthenticator({self.server.home.path}, {self.sessions!r})"

    def sign_in_form(self, field: Callable[[str], str], address: str) -> SignIn:
        """`sign_in` with the login form's `token` (`field(name)`)."""
        return self.sign_in(field("token"), address)

    def sign_in(self, secret: str, address: str) -> SignIn:
        """Open a session for the usable token `secret`, unless the address is locked out."""
        until = self.per_address.locked_until(address)
        if until is not None:
            log.warning("dashboard: token sign-in refused from %s: locked out until %s",
                        address, until)
            return SignIn(locked_until=until, locked_by="address")
        try:
            token = self.server.store.tokens.authenticate(secret.strip()[:MAX_TOKEN],
                                                          self.clock())
        except MlopsError as exc:
            log.error("dashboard: sign-in unavailable, the server's store failed: %s", exc)
            return SignIn(unavailable=True)
        if token is None:
            failures = self.per_address.failure(address)
            log.warning("dashboard: failed token sign-in from %s (%d failures from the "
                        "address)", address, failures)
            return SignIn()
        log.info("dashboard: %r (token %d, roles %s) signed in from %s", token.user, token.id,
                 ",".join(token.roles), address)
        return SignIn(session_id=self.sessions.create(token.user, str(token.id)))

    def token_for(self, session_id: str | None) -> Token | None:
        """The token of a live session, if it is still usable; else None (and the
        session ends)."""
        session = self.sessions.get(session_id)
        if session is None:
            return None
        try:
            token = self.server.store.tokens.get(int(session.fingerprint))
        except NotFound:
            token = None
        except MlopsError as exc:
            log.error("dashboard: sessions refused, the server's store failed: %s", exc)
            return None
        if token is None or not token.usable(self.clock()) or token.user != session.user:
            self.sessions.delete(session_id)
            log.info("dashboard: session of %r ended: its token was revoked or expired",
                     session.user)
            return None
        return token

    def sign_out(self, session_id: str | None) -> None:
        session = self.sessions.get(session_id)
        self.sessions.delete(session_id)
        if session is not None:
            log.info("dashboard: %r signed out", session.user)
