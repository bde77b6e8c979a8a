"""API tokens of the team server: who a bearer token is, and with which roles.

A token is `mlops_` + 32 random bytes (url-safe base64), shown once when made.
Only its SHA-256 is stored (a 256-bit random secret needs no slow hash: there
is nothing to guess), with the user, the roles, when it was made, when it
expires, when it was revoked and last used, and its first characters for
display. The team server maps every request's token to a `Token` here.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass

from ..errors import InvalidInput, NotFound
from ..team_protocol import ROLES, TOKEN_PREFIX
from .connection import write
from .ids import storable

USER_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
SHOWN_CHARACTERS = 12  # `mlops_` and the first 6 random characters, for `token list`
MAX_EXPIRES_DAYS = 3650
LAST_USED_EVERY = 60.0  # seconds: `last_used_at` is written at most this often per token

_COLUMNS = ("id, user_name, roles, shown, created_at, expires_at, revoked_at, last_used_at")


@dataclass(frozen=True)
class Token:
    """A token as stored: never its secret."""

    id: int
    user: str
    roles: tuple[str, ...]
    shown: str  # the first characters, to tell tokens apart in a listing
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def usable(self, now: float) -> bool:
        """Neither revoked nor expired at `now`."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def check_user(user: object) -> str:
    """A user name: 1 to 64 of lowercase letters, digits, `.`, `_`, `@`, `-`, starting
    with a letter or digit. Raises `InvalidInput` naming the value."""
    if not isinstance(user, str) or not USER_NAME.fullmatch(user):
        raise InvalidInput(f"user name {str(user)[:80]!r} refused: use 1 to 64 lowercase "
                           "letters, digits, '.', '_', '@' and '-', starting with a letter "
                           "or digit")
    return user


def check_roles(roles: object) -> tuple[str, ...]:
    """One or more known role names (`team_protocol.ROLES`), without repeats, in
    their given order. Raises `InvalidInput` naming an unknown one."""
    if not isinstance(roles, (list, tuple)) or not roles:
        raise InvalidInput(f"give at least one role ({', '.join(ROLES)})")
    for role in roles:
        if role not in ROLES:
            raise InvalidInput(f"unknown role {str(role)[:80]!r}: the roles are "
                               f"{', '.join(ROLES)}")
    return tuple(dict.fromkeys(roles))


def hash_secret(secret: str) -> str:
    """`sha256:<hex>` of a token, as stored and looked up."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class TokenRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._used: dict[int, float] = {}  # token id -> last_used_at written

    def create(self, user: str, roles: list[str] | tuple[str, ...], *,
               expires_days: float | None = None,
               now: float | None = None) -> tuple[Token, str]:
        """A new token for `user` with `roles`; returns it and its secret (shown once).

        Raises `InvalidInput` for a bad user name, an unknown role, or an expiry
        that is not a number of days from more than 0 to 3650.
        """
        check_user(user)
        checked = check_roles(roles)
        if expires_days is not None and (
                isinstance(expires_days, bool) or not isinstance(expires_days, (int, float))
                or not 0 < expires_days <= MAX_EXPIRES_DAYS):
            raise InvalidInput(f"--expires-days {expires_days!r} refused: give a number of "
                               f"days from more than 0 to {MAX_EXPIRES_DAYS}")
        created = time.time() if now is None else now
        expires = None if expires_days is None else created + expires_days * 86400.0
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with write(self._conn) as conn:
            cursor = conn.execute(
                "INSERT INTO api_tokens (user_name, roles, token_hash, shown, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (user, json.dumps(list(checked)), hash_secret(secret),
                 secret[:SHOWN_CHARACTERS], created, expires))
            token_id = int(cursor.lastrowid)
        return self.get(token_id), secret

    def get(self, token_id: int) -> Token:
        """The token numbered `token_id`; raises `NotFound`."""
        if not isinstance(token_id, int) or not storable(token_id):
            raise NotFound(f"no token {token_id!r}: `mlops server token list` shows them")
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ?",
                                 (token_id,)).fetchone()
        if row is None:
            raise NotFound(f"no token {token_id}: `mlops server token list` shows them")
        return _token(row)

    def list(self) -> list[Token]:
        """Every token, oldest first (revoked and expired ones too)."""
        return [_token(row) for row in
                self._conn.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY id")]

    def revoke(self, token_id: int, now: float | None = None) -> Token:
        """Revoke a token (at once, for every server on this database); revoking it
        again changes nothing. Raises `NotFound`."""
        self.get(token_id)
        with write(self._conn) as conn:
            conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at "
                         "IS NULL", (time.time() if now is None else now, token_id))
        return self.get(token_id)

    def authenticate(self, secret: str, now: float | None = None) -> Token | None:
        """The usable token whose secret is `secret`, or None (unknown, revoked, expired).

        Notes when it was used (at most once a minute per token, so a busy client
        does not turn every request into a write).
        """
        if not isinstance(secret, str) or not secret.startswith(TOKEN_PREFIX) \
                or len(secret) > 200:
            return None
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = ?",
                                 (hash_secret(secret),)).fetchone()
        if row is None:
            return None
        token = _token(row)
        now = time.time() if now is None else now
        if not token.usable(now):
            return None
        if now - self._used.get(token.id, 0.0) >= LAST_USED_EVERY:
            self._used[token.id] = now
            with write(self._conn) as conn:
                conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                             (now, token.id))
        return token

    def issued(self, secret: str) -> Token | None:
        """The token whose secret is `secret`, usable or not (revoked, expired); None when
        no such token was ever made. The server counts only the latter as a guess: a
        service left running with a revoked or expired token is not an attacker, and
        must not lock everyone at its address out."""
        if not isinstance(secret, str) or not secret.startswith(TOKEN_PREFIX) \
                or len(secret) > 200:
            return None
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = ?",
                                 (hash_secret(secret),)).fetchone()
        return None if row is None else _token(row)


def _token(row: tuple) -> Token:
    return Token(id=row[0], user=row[1], roles=tuple(json.loads(row[2])), shown=row[3],
                 created_at=row[4], expires_at=row[5], revoked_at=row[6], last_used_at=row[7])
