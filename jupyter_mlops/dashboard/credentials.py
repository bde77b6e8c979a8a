"""The dashboard's credentials file: users with scrypt-hashed passwords and roles.

    {"cookie_secret": "...", "users": {"alice": {"password": "scrypt$...", "roles": ["reviewer"]}}}

Create and extend it with `mlops credentials add NAME --role reviewer`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInput, NotFound

_N, _R, _P = 2**14, 8, 1
USER_NAME = re.compile(r"[A-Za-z0-9_.\-@]{1,64}")
ROLES = ("reviewer", "admin")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P)
    encoded_salt = base64.b64encode(salt).decode()
    return f"scrypt${_N}${_R}${_P}${encoded_salt}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class Credentials:
    cookie_secret: str = field(repr=False)
    users: dict[str, tuple[str, tuple[str, ...]]] = field(repr=False)  # name -> (hash, roles)

    def check(self, user: str, password: str) -> bool:
        entry = self.users.get(user)
        if entry is None:
            verify_password(password, _DUMMY)  # same time for unknown users
            return False
        return verify_password(password, entry[0])

    def roles(self, user: str) -> tuple[str, ...]:
        entry = self.users.get(user)
        return () if entry is None else entry[1]


_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 86 + "=="


def load_credentials(path: str | os.PathLike[str]) -> Credentials:
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"no credentials file at {file}; create one with "
                       "`mlops credentials add NAME --role reviewer --file ...`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{file}: not valid JSON: {exc}") from None
    try:
        secret = str(data["cookie_secret"])
        users = {str(name): (str(body["password"]), tuple(str(r) for r in body.get("roles", [])))
                 for name, body in data["users"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"{file}: expected {{'cookie_secret': ..., 'users': {{NAME: "
                           f"{{'password': HASH, 'roles': [...]}}}}}}: {exc!r}") from None
    if len(secret) < 32:
        raise InvalidInput(f"{file}: cookie_secret is too short (32 characters at least)")
    for name, (stored, _) in users.items():
        if not stored.startswith("scrypt$"):
            raise InvalidInput(f"{file}: the password of {name!r} is not a scrypt hash; "
                               "plain-text passwords are refused (use `mlops credentials add`)")
    return Credentials(cookie_secret=secret, users=users)


def add_user(path: str | os.PathLike[str], user: str, password: str,
             roles: list[str]) -> None:
    """Add or replace a user; creates the file (mode 600, fresh cookie secret) if needed."""
    if not USER_NAME.fullmatch(user):
        raise InvalidInput(f"user name {user[:80]!r} refused: letters, digits, . _ - @ only")
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise InvalidInput(f"unknown role {sorted(unknown)[0]!r} (roles: {', '.join(ROLES)})")
    if len(password) < 8:
        raise InvalidInput("the password must have at least 8 characters")
    file = Path(path)
    data = (json.loads(file.read_text(encoding="utf-8")) if file.exists()
            else {"cookie_secret": secrets.token_urlsafe(48), "users": {}})
    data["users"][user] = {"password": hash_password(password), "roles": sorted(set(roles))}
    tmp = file.with_name(file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
    os.replace(tmp, file)
