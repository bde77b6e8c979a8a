"""The dashboard's credentials file: scrypt password hashes and the cookie secret.

    {"cookie_secret": "...", "users": {"alice": {"password": "scrypt$..."}}}

Create and extend it with `mlops credentials add NAME`. The file holds secrets
only: who may review or administer comes from `[users.NAME] roles` in the
project's `.mlops/config.toml`, the one source of roles for the CLI and the
dashboard. A file written by an older version may still carry `roles`; they
are ignored (and reported, see `Credentials.ignored_roles`), and the next
`mlops credentials add` drops them.

Like ssh with a private key, the file must be private (mode 0600): a file that
group or others may read or write is refused, naming the `chmod` that fixes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shlex
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, NotFound

_N, _R, _P = 2**14, 8, 1
USER_NAME = re.compile(r"[A-Za-z0-9_.\-@]{1,64}")
MIN_PASSWORD = 8
MIN_SECRET = 32
ROLES_LIVE_IN_CONFIG = ("roles live in the project's .mlops/config.toml, e.g. "
                        "[users.alice] roles = [\"reviewer\"]")


def hash_password(password: str) -> str:
    """A salted scrypt hash, self-describing: `scrypt$N$r$p$salt$digest`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P)
    encoded_salt = base64.b64encode(salt).decode()
    return f"scrypt${_N}${_R}${_P}${encoded_salt}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 86 + "=="


@dataclass(frozen=True)
class Credentials:
    """Password hashes by user name and the secret that signs cookies (never shown)."""

    cookie_secret: str = field(repr=False)
    users: dict[str, str] = field(repr=False)  # name -> scrypt hash
    ignored_roles: tuple[str, ...] = ()  # users whose file entry still carries roles

    def check(self, user: str, password: str) -> bool:
        """Whether `password` is `user`'s; unknown users cost the same time."""
        stored = self.users.get(user)
        if stored is None:
            verify_password(password, _DUMMY)
            return False
        return verify_password(password, stored)

    def fingerprint(self, user: str) -> str | None:
        """A short digest of `user`'s password hash: it changes when the password does.

        Sessions keep it and compare it on every request, so a new password
        (or a removed user) ends every session opened before.
        """
        stored = self.users.get(user)
        if stored is None:
            return None
        return hashlib.sha256(stored.encode("utf-8")).hexdigest()[:32]


def roles_warning(path: str | os.PathLike[str], credentials: Credentials) -> str | None:
    """The one-line start-up warning for a file that still carries roles, if it does."""
    if not credentials.ignored_roles:
        return None
    names = ", ".join(credentials.ignored_roles)
    return (f"WARNING: {path}: the roles stored there (for {names}) are ignored: "
            f"{ROLES_LIVE_IN_CONFIG}; `mlops credentials add` rewrites the file without them")


def check_private(file: Path) -> None:
    """Refuse a credentials file that group or others may read or write (as ssh does)."""
    mode = stat.S_IMODE(file.stat().st_mode)
    if mode & 0o077:
        raise InvalidInput(
            f"{file} has mode {mode:04o}: group or others may read or write it, and it holds "
            f"password hashes and the cookie secret; make it private with "
            f"`chmod 600 {shlex.quote(str(file))}`, then start again")


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"no credentials file at {file}; create one with "
                       f"`mlops credentials add NAME --file {shlex.quote(str(file))}`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{file}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
        raise InvalidInput(f"{file}: expected {{\"cookie_secret\": ..., \"users\": "
                           f"{{NAME: {{\"password\": HASH}}}}}}")
    return data


def _parse(file: Path, data: dict[str, Any]) -> Credentials:
    users: dict[str, str] = {}
    with_roles: list[str] = []
    for name, body in data["users"].items():
        if not isinstance(body, dict) or not isinstance(body.get("password"), str):
            raise InvalidInput(f"{file}: user {str(name)[:80]!r} has no password hash")
        if not body["password"].startswith("scrypt$"):
            raise InvalidInput(f"{file}: the password of {str(name)[:80]!r} is not a scrypt "
                               "hash; plain-text passwords are refused (use `mlops credentials "
                               "add`)")
        users[str(name)] = body["password"]
        if body.get("roles"):
            with_roles.append(str(name))
    secret = data.get("cookie_secret")
    if not isinstance(secret, str) or len(secret) < MIN_SECRET:
        raise InvalidInput(f"{file}: cookie_secret is missing or too short ({MIN_SECRET} "
                           "characters at least)")
    return Credentials(cookie_secret=secret, users=users, ignored_roles=tuple(sorted(with_roles)))


def load_credentials(path: str | os.PathLike[str]) -> Credentials:
    """Read a private credentials file.

    Raises `NotFound` when it is missing, `InvalidInput` when group or others
    may read or write it, or when it is malformed or holds a plain password.
    """
    file = Path(path)
    if not file.exists():
        _read_json(file)  # raises NotFound with the way to create one
    check_private(file)
    return _parse(file, _read_json(file))


def add_user(path: str | os.PathLike[str], user: str, password: str) -> bool:
    """Add a user or change their password; True when the user already existed.

    Creates the file (mode 0600, fresh cookie secret) if needed, and always
    writes it back 0600 without any `roles` an older version stored. A changed
    password ends that user's dashboard sessions (see `Credentials.fingerprint`).
    """
    if not USER_NAME.fullmatch(user):
        raise InvalidInput(f"user name {user[:80]!r} refused: letters, digits, . _ - @ only")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password must have at least {MIN_PASSWORD} characters")
    file = Path(path)
    data = (_read_json(file) if file.exists()
            else {"cookie_secret": secrets.token_urlsafe(48), "users": {}})
    existed = user in data["users"]
    users = {name: {"password": body["password"]} for name, body in data["users"].items()
             if isinstance(body, dict) and "password" in body}
    users[user] = {"password": hash_password(password)}
    secret = data.get("cookie_secret")
    if not isinstance(secret, str) or len(secret) < MIN_SECRET:
        secret = secrets.token_urlsafe(48)  # a fresh one: every sign-in starts again
    _write_private(file, {"cookie_secret": secret, "users": users})
    return existed


def _write_private(file: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON, atomically, through a fresh 0600 temporary file."""
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, file)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class CredentialsFile:
    """The credentials file as a running dashboard sees it: re-read whenever it changes.

    `mlops credentials add` may change a password while the dashboard runs; the
    next request sees the new hash (and so ends the user's sessions). A file
    that becomes unusable (removed, made group-readable, malformed) makes
    `current()` raise, so sign-in fails closed until it is fixed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, ...] | None = None
        self._credentials: Credentials | None = None
        self.current()

    def __repr__(self) -> str:
        return f"CredentialsFile({str(self.path)!r})"

    def current(self) -> Credentials:
        """The credentials as the file holds them now; raises like `load_credentials`."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)
        except OSError:
            stamp = None
        if stamp is None or stamp != self._stamp or self._credentials is None:
            self._credentials = None
            self._stamp = None
            credentials = load_credentials(self.path)
            self._credentials, self._stamp = credentials, stamp
        return self._credentials
