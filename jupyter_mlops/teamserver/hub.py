"""The team server as a JupyterHub service: Hub tokens name the user, Hub groups the roles.

Turned on by a `[hub]` section in server.toml (not a flag of `mlops server
start`): who gets which role is the admin's configuration, kept with the rest
of it in the 0600 home, and a restart can't forget it.

    [hub]
    default_roles = ["writer"]          # every Hub user the Hub lets reach the service
    [hub.roles]
    reviewer = ["group:ml-reviewers"]   # "group:NAME" or "user:NAME"
    admin = ["group:ml-admins"]

A request whose bearer token is not one of the server's own (`mlops_...`) is
resolved by `jupyterhub.services.auth.HubAuth` (the Hub's `/hub/api/user`,
answers cached `cache_max_age` seconds, so a token is not resolved per
request). The token must carry the scope `access:services!service=NAME` (the
Hub's RBAC decides who may reach the service at all: 403 otherwise); the roles
are `default_roles` plus every role whose list names the user or one of the
user's Hub groups. The server's own tokens keep working beside Hub tokens.

The Hub gives a managed service what HubAuth reads: `JUPYTERHUB_API_TOKEN`,
`JUPYTERHUB_API_URL`, `JUPYTERHUB_SERVICE_NAME`, `JUPYTERHUB_SERVICE_PREFIX`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput, PermissionDenied, StoreUnavailable
from ..store.tokens import Token, check_user
from ..team_protocol import ROLES, TOKEN_PREFIX

CACHE_SECONDS = 300  # HubAuth's default: a revoked Hub token stops working within this
HUB_TIMEOUT = 10.0  # seconds a Hub gets to answer (HubAuth's client would wait 300)
HUB_ENV = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL")


@dataclass(frozen=True)
class HubConfig:
    """server.toml's [hub] section."""

    default_roles: tuple[str, ...] = ("writer",)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # role -> members
    cache_seconds: int = CACHE_SECONDS

    def roles_of(self, user: str, groups: list[str]) -> tuple[str, ...]:
        """The roles of Hub user `user` in `groups`, in ROLES order."""
        members = {f"user:{user}", *(f"group:{g}" for g in groups)}
        granted = set(self.default_roles) | {role for role, names in self.roles.items()
                                             if members & set(names)}
        return tuple(role for role in ROLES if role in granted)


def parse_hub_section(section: object, where: str) -> HubConfig:
    """A `HubConfig` from server.toml's `[hub]` table; `InvalidInput` naming the key."""
    if not isinstance(section, dict):
        raise InvalidInput(f"{where}: [hub] must be a table")
    unknown = set(section) - {"default_roles", "roles", "cache_seconds"}
    if unknown:
        raise InvalidInput(f"{where}: [hub] has unknown keys {', '.join(sorted(unknown))} "
                           "(known: default_roles, roles, cache_seconds)")
    default = _role_list(section.get("default_roles", ["writer"]), where, "default_roles")
    table = section.get("roles", {})
    if not isinstance(table, dict):
        raise InvalidInput(f"{where}: [hub.roles] must be a table of ROLE = [\"group:NAME\", "
                           "\"user:NAME\", ...]")
    roles: dict[str, tuple[str, ...]] = {}
    for role, members in table.items():
        _role_list([role], where, "[hub.roles]")
        if not isinstance(members, list) or not all(
                isinstance(m, str) and m.partition(":")[0] in ("group", "user")
                and m.partition(":")[2] for m in members):
            raise InvalidInput(f"{where}: [hub.roles] {role} must be a list of "
                               "\"group:NAME\" or \"user:NAME\"")
        for member in members:
            _check_member(member, role, where)
        roles[role] = tuple(members)
    seconds = section.get("cache_seconds", CACHE_SECONDS)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= 3600:
        raise InvalidInput(f"{where}: [hub] cache_seconds must be 0 to 3600 seconds")
    return HubConfig(default_roles=default, roles=roles, cache_seconds=seconds)


def _check_member(member: str, role: str, where: str) -> None:
    """Refuse a member that could never match, so a typo is an error, not a silent 403:
    a user name this server can't hold (the Hub lowercases names: "user:Alice" is no
    one), a group name with spaces around it, control characters or over 255 characters."""
    kind, _, name = member.partition(":")
    if kind == "user":
        try:
            check_user(name)
        except InvalidInput:
            raise InvalidInput(f"{where}: [hub.roles] {role}: {member[:80]!r} names no "
                               "user (lowercase letters, digits, '.', '_', '@', '-')") from None
    elif len(name) > 255 or name != name.strip() or not name.isprintable():
        raise InvalidInput(f"{where}: [hub.roles] {role}: {member[:80]!r} names no group "
                           "(no spaces around it, no control characters, at most 255)")


def _role_list(value: object, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise InvalidInput(f"{where}: [hub] {key} must be a list of roles")
    for role in value:
        if role not in ROLES:
            raise InvalidInput(f"{where}: {key}: {role!r} is not a role ({', '.join(ROLES)})")
    return tuple(value)


def hub_toml(config: HubConfig) -> str:
    """The [hub] section as server.toml holds it (written back by `mlops server init`)."""
    lines = ["[hub]", f"default_roles = {json.dumps(list(config.default_roles))}",
             f"cache_seconds = {config.cache_seconds}", "[hub.roles]"]
    lines += [f"{role} = {json.dumps(list(members))}" for role, members in config.roles.items()]
    return "\n".join(lines) + "\n"


def access_scopes(environ: Mapping[str, str]) -> set[str]:
    """The scopes that let a token in, as HubAuth reads them (but from `environ`):
    `JUPYTERHUB_OAUTH_ACCESS_SCOPES`, else `access:services!service=NAME`."""
    given = environ.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES")
    if given:
        try:
            scopes = json.loads(given)
        except ValueError:
            scopes = None
        if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
            raise InvalidInput("JUPYTERHUB_OAUTH_ACCESS_SCOPES is not a JSON list of scopes")
        if scopes:
            return set(scopes)
    name = environ.get("JUPYTERHUB_SERVICE_NAME")
    if not name:
        raise InvalidInput("JUPYTERHUB_SERVICE_NAME is not set: the server can't tell which "
                           "access:services scope lets a Hub user in")
    return {f"access:services!service={name}"}


class HubIdentity:
    """Hub tokens to `Token`s, through HubAuth and its cache."""

    def __init__(self, config: HubConfig, environ: Mapping[str, str] | None = None,
                 timeout: float = HUB_TIMEOUT) -> None:
        environ = os.environ if environ is None else environ
        missing = [name for name in HUB_ENV if not environ.get(name)]
        if missing:
            raise InvalidInput(f"server.toml has a [hub] section but {', '.join(missing)} "
                               "is not set: run the server as a JupyterHub service "
                               "(c.JupyterHub.services, see README 'On a JupyterHub'), or "
                               "remove [hub]")
        from jupyterhub.services.auth import HubAuth

        self.config = config
        self.timeout = timeout
        self.service = environ.get("JUPYTERHUB_SERVICE_NAME", "")
        self.auth = HubAuth(api_token=environ["JUPYTERHUB_API_TOKEN"],
                            api_url=environ["JUPYTERHUB_API_URL"],
                            access_scopes=access_scopes(environ),
                            cache_max_age=config.cache_seconds)

    async def token_for(self, secret: str) -> Token | None:
        """The Hub user of `secret` as a `Token` (None: the Hub knows no such token).

        Raises `PermissionDenied` when the token lacks the access scope or maps to
        no role, `StoreUnavailable` when the Hub does not answer.
        """
        if secret.startswith(TOKEN_PREFIX):
            return None  # one of the server's own (wrong, or sent as "token"): not the Hub's to see
        # cache_seconds = 0 means "ask every time"; HubAuth's 0 would mean "cache forever"
        asked = self.auth.user_for_token(secret, use_cache=self.config.cache_seconds > 0,
                                         sync=False)
        try:
            model: dict[str, Any] | None = await asyncio.wait_for(asked, self.timeout)
        except TimeoutError:  # asyncio.wait_for: HubAuth turns its own errors into HTTPError
            raise StoreUnavailable(f"the JupyterHub did not answer within {self.timeout:g} s; "
                                   "try again when it is back") from None
        except Exception as exc:  # tornado's HTTPError, a refused connection, ...
            reason = " ".join(str(exc).split())[:300]  # one line, whatever HubAuth wrote
            raise StoreUnavailable(f"the JupyterHub did not answer ({reason}); try again "
                                   "when it is back") from None
        if not model or model.get("kind", "user") != "user":
            return None
        name = str(model.get("name", ""))
        if not self.auth.check_scopes(self.auth.access_scopes, model):
            raise PermissionDenied(
                f"Hub user {name!r} may not use this service: the Hub grants "
                f"{' or '.join(sorted(self.auth.access_scopes))} to the token's owner and "
                "to the server token (load_roles); ask the Hub's admin")
        try:
            user = check_user(name)
        except InvalidInput:
            raise PermissionDenied(f"Hub user name {name[:80]!r} can't be a user here (use "
                                   "lowercase letters, digits, '.', '_', '@', '-')") from None
        roles = self.config.roles_of(user, [str(g) for g in model.get("groups") or []])
        if not roles:
            raise PermissionDenied(f"Hub user {user!r} has no role here: server.toml [hub] "
                                   "default_roles is empty and no [hub.roles] entry names "
                                   "the user or a group of theirs; ask the server's admin")
        return Token(id=0, user=user, roles=roles, shown="hub", created_at=0.0,
                     expires_at=None, revoked_at=None, last_used_at=None)
