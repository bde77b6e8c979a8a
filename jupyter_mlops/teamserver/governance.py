"""Release requests and decisions on the team server: the embedded mode's `Registry`,
with the token's user and roles as the identity.

The rules are the registry's own, run here inside the server's transactions:
four eyes (nobody approves their own request), reviewers only, gates evidence
computed by the request itself, admin override with a written reason, stale
evidence refused. The client sends what it asks for, never who is asking.

The server's registry settings (protected aliases, gates, evaluation data)
are the `[registry]` and `[[gates]]` sections of `registry.toml` in the
server's home, in the format of a project's `.mlops/config.toml`; without the
file, `production` is protected and no gates apply. `[users.NAME]` roles there
are ignored: a token's roles are the roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import MonitoringConfig, RegistryConfig, load_config
from ..errors import InvalidInput
from ..registry.identity import Identity
from ..store import Store
from ..store.ids import storable
from ..store.tokens import Token

REGISTRY_FILE = "registry.toml"


@dataclass(frozen=True)
class ServerProject:
    """What `Registry` (and the dashboard's monitoring pages) read of a project, for the
    server: its home is the root (relative evaluation data is found there) and the
    home (its `predictions/` log), its artifact folder, its rules."""

    root: Path
    artifacts_dir: Path | str  # a folder, or an fsspec URL
    registry: RegistryConfig
    monitoring: MonitoringConfig

    @property
    def home(self) -> Path:
        return self.root

    @property
    def rules_file(self) -> str:
        """Where the rules are, as messages name it (a project's: .mlops/config.toml)."""
        return f"{REGISTRY_FILE} in the team server's home"


def server_project(home: Path, artifacts: Path | str) -> ServerProject:
    """The server as a project, with the rules and thresholds of `home/registry.toml`."""
    _, registry, monitoring, _ = load_config(home / REGISTRY_FILE)
    return ServerProject(home, artifacts, registry, monitoring)


def registry_for(home: Path, artifacts: Path | str, store: Store) -> Any:  # -> Registry
    """The `Registry` of the server's store with the rules of `home/registry.toml`."""
    from ..registry.releases import Registry  # loads model code: only for governance

    return Registry(server_project(home, artifacts), store)  # type: ignore[arg-type]


def identity(token: Token) -> Identity:
    return Identity(user=token.user, roles=frozenset(token.roles))


def _text(body: dict[str, Any], key: str, optional: bool = False) -> str | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key!r} must be a string, got {str(value)[:80]!r}")
    return value


def check_body(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


def request_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not storable(int(text)):
        raise InvalidInput(f"release request id {text[:40]!r} is not a number")
    return int(text)


def request_release(registry: Any, token: Token, body: object) -> Any:
    """`{"model": "churn:3", "alias": "production", "reason": "..."}` -> the request."""
    body = check_body(body)
    return registry.request_release(_text(body, "model"), _text(body, "alias"),
                                    identity(token), _text(body, "reason"))


def decide(registry: Any, token: Token, number: int, verb: str, body: object) -> Any:
    """approve: `{"reason", "override_reason"?, "accept_data_change"?}`; reject:
    `{"reason"}` -> the decided request. The registry raises `PermissionDenied`
    for the requester, a non-reviewer, failing gates without an admin's override."""
    body = check_body(body)
    reason = _text(body, "reason")
    if verb == "reject":
        return registry.reject(number, identity(token), reason)
    accept = body.get("accept_data_change", False)
    if not isinstance(accept, bool):
        raise InvalidInput("'accept_data_change' must be true or false")
    return registry.approve(number, identity(token), reason,
                            override_reason=_text(body, "override_reason", optional=True),
                            accept_data_change=accept)


def set_alias(registry: Any, token: Token, body: object) -> Any:
    """`{"model": "churn:3", "alias": "staging", "reason": "..."}` -> the version the
    alias now names. A protected alias is refused (`PermissionDenied`): it moves only
    through an approved release."""
    body = check_body(body)
    return registry.set_alias(_text(body, "model"), _text(body, "alias"), identity(token),
                              _text(body, "reason"))


def run_gates(registry: Any, token: Token, body: object) -> Any:
    """`{"model": "churn:3", "against": "staging"?}` -> the gate results, stored. The data
    is the server's evaluation data (`registry.toml`): a client names no file on the
    server. The results are information; a release request computes its own evidence."""
    body = check_body(body)
    return registry.run_gates(_text(body, "model"), identity(token),
                              against=_text(body, "against", optional=True))
