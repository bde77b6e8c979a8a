"""Signing in and out of the dashboard, without Panel or tornado handlers.

`Authenticator` ties the credentials file (password hashes), the back-off
after failures and the server-side sessions together. The tornado handlers in
`auth.py` and the pages (through `DashboardContext`) only call it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import MlopsError
from ..registry.identity import Identity
from .credentials import CredentialsFile
from .sessions import SessionStore
from .throttle import PER_ADDRESS, PER_USER, NameBuckets, Throttle

COOKIE = "mlops_session"
COOKIE_DAYS = 1  # tornado's signature check; the session's own expiry is shorter


def session_id_of(cookie_secret: str | bytes, signed: str | None) -> str | None:
    """The session id a signed `mlops_session` cookie value carries, if its signature holds."""
    if not signed:
        return None
    from tornado.web import decode_signed_value

    value = decode_signed_value(cookie_secret, COOKIE, signed, max_age_days=COOKIE_DAYS)
    return None if value is None else value.decode("ascii", "replace")


class TokenSessions:
    """The questions about a request that a sign-in answers from its sessions, when each
    session holds a token (a team token, or a Hub user's): subclasses say `token_for`,
    the token of a live session (its user and roles as they are now), or None."""

    cookie_secret: str

    def token_for(self, session_id: str | None) -> Any:  # -> store.tokens.Token | None
        raise NotImplementedError

    def user_for(self, session_id: str | None) -> str | None:
        token = self.token_for(session_id)
        return None if token is None else token.user

    def identity_for_cookie(self, signed: str | None) -> Identity | None:
        """Who a Panel session is (the token's user and roles), from its signed cookie."""
        token = self.token_for(session_id_of(self.cookie_secret, signed))
        return None if token is None else Identity(user=token.user,
                                                   roles=frozenset(token.roles))

    def user_for_cookie(self, signed: str | None) -> str | None:
        identity = self.identity_for_cookie(signed)
        return None if identity is None else identity.user
MAX_USER = 64
MAX_PASSWORD = 1024
log = logging.getLogger("jupyter_mlops.dashboard")


@dataclass(frozen=True)
class SignIn:
    """What became of a sign-in attempt: a session id, or why not."""

    session_id: str | None = None
    locked_until: float | None = None  # refused without checking: too many failures
    locked_by: str = ""  # "user" or "address"
    unavailable: bool = False  # the credentials file cannot be used right now

    @property
    def ok(self) -> bool:
        return self.session_id is not None

    def retry_message(self, now: float) -> str:
        """What a locked-out person reads: why, and when to try again."""
        when = dt.datetime.fromtimestamp(self.locked_until or now, dt.UTC)
        wait = max(1, round((self.locked_until or now) - now))
        who = "for this user" if self.locked_by == "user" else "from this address"
        return (f"Too many failed sign-ins {who}: sign-in is locked, even with the right "
                f"password, until {when:%H:%M:%S} UTC (in {wait} s). Try again then.")


class Authenticator:
    """Checks passwords with back-off, opens and ends sessions, names a session's user."""

    login_fields = ('<label>User <input name="username" autocomplete="username" autofocus>'
                    '</label>\n<label>Password <input name="password" type="password" '
                    'autocomplete="current-password"></label>')
    refused_message = "Wrong user name or password."

    def __init__(self, credentials: CredentialsFile, sessions: SessionStore | None = None,
                 per_user: Throttle | None = None, per_address: Throttle | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        # `is None`, not `or`: an empty store or throttle has length 0, so is falsy
        self.sessions = SessionStore(clock=clock) if sessions is None else sessions
        self.per_user = Throttle(PER_USER, clock=clock) if per_user is None else per_user
        self.per_address = (Throttle(PER_ADDRESS, clock=clock) if per_address is None
                            else per_address)
        self.names = NameBuckets()
        self.clock = clock
        self.cookie_secret = credentials.current().cookie_secret  # fixed for the process

    def __repr__(self) -> str:  # the cookie secret never appears in a repr or a log
        return f"Authenticator({self.credentials!r}, {self.sessions!r})"

    def sign_in(self, user: str, password: str, address: str) -> SignIn:
        """Check `password` for `user` unless the user or the address is locked out.

        An unknown name costs the same as a known one (a password hash checked
        against a dummy) and locks the same way, so neither the time of the
        answer nor a lockout tells which names exist.
        """
        user, password = user[:MAX_USER], password[:MAX_PASSWORD]
        try:
            credentials = self.credentials.current()
        except MlopsError as exc:
            log.error("dashboard: sign-in unavailable: %s", exc)
            return SignIn(unavailable=True)
        fingerprint = credentials.fingerprint(user)
        user_key = self.names.key(user, known=fingerprint is not None)
        for kind, throttle, key in (("user", self.per_user, user_key),
                                    ("address", self.per_address, address)):
            until = throttle.locked_until(key)
            if until is not None:
                log.warning("dashboard: sign-in refused for user %r from %s: locked out by "
                            "%s back-off until %s", user, address, kind, _utc(until))
                return SignIn(locked_until=until, locked_by=kind)
        matches = credentials.check(user, password)  # scrypt runs for unknown names too
        if fingerprint is None or not matches:
            return self._failed(user, user_key, address, known=fingerprint is not None)
        self.per_user.reset(user_key)
        log.info("dashboard: %r signed in from %s", user, address)
        return SignIn(session_id=self.sessions.create(user, fingerprint))

    def sign_in_form(self, field: Callable[[str], str], address: str) -> SignIn:
        """`sign_in` with the login form's `username` and `password` (`field(name)`)."""
        return self.sign_in(field("username"), field("password"), address)

    def _failed(self, user: str, user_key: str, address: str, known: bool) -> SignIn:
        user_failures = self.per_user.failure(user_key)
        address_failures = self.per_address.failure(address)
        locks = [f"{kind} locked until {_utc(until)}" for kind, until in (
            ("user", self.per_user.locked_until(user_key)),
            ("address", self.per_address.locked_until(address))) if until is not None]
        who = repr(user) if known else f"{user!r} (not a configured user)"
        log.warning("dashboard: failed sign-in for user %s from %s (%d failures for the user, "
                    "%d from the address)%s", who, address, user_failures, address_failures,
                    "; " + ", ".join(locks) if locks else "")
        return SignIn()

    def user_for(self, session_id: str | None) -> str | None:
        """The user of a live session whose password has not changed since, else None."""
        session = self.sessions.get(session_id)
        if session is None:
            return None
        try:
            current = self.credentials.current().fingerprint(session.user)
        except MlopsError as exc:
            log.error("dashboard: sessions refused, the credentials file is unusable: %s", exc)
            return None
        if current != session.fingerprint:
            ended = self.sessions.revoke_user(session.user) if current is None else 0
            self.sessions.delete(session_id)
            log.info("dashboard: session of %r ended: password changed or user removed%s",
                     session.user, f" ({ended} sessions)" if ended else "")
            return None
        return session.user

    def user_for_cookie(self, signed: str | None) -> str | None:
        """Like `user_for`, from the signed cookie value a Panel session carries."""
        return self.user_for(session_id_of(self.cookie_secret, signed))

    def sign_out(self, session_id: str | None) -> None:
        """End one session: its cookie stops working on the next request."""
        session = self.sessions.get(session_id)
        self.sessions.delete(session_id)
        if session is not None:
            log.info("dashboard: %r signed out", session.user)


def _utc(epoch: float) -> str:
    return f"{dt.datetime.fromtimestamp(epoch, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
