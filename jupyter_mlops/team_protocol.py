"""What the team server and its clients agree on: API version, roles, errors on the wire.

Both sides import this module (`teamserver/` serves the API, `remote/` calls
it), so a role, a limit or an error kind is defined once. The full contract is
in docs/team-mode.md; the server publishes it as OpenAPI at `/api/openapi.json`.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    MlopsError,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
)

API_VERSION = 1  # bumped on a change an older client would misread
MIN_CLIENT_API = 1  # the oldest client API this server still speaks
API_PREFIX = "/api/v1"
TOKEN_PREFIX = "mlops_"  # tokens look like mlops_<43 url-safe characters>

# What each role may do; a token holds one or more roles and gets the union.
ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
    "reader": frozenset({"read"}),
    "writer": frozenset({"read", "record", "pipeline", "request"}),
    "runner": frozenset({"read", "record", "pipeline", "predictions"}),
    "reviewer": frozenset({"read", "request", "review"}),
    "admin": frozenset({"read", "record", "pipeline", "predictions", "request", "review",
                        "admin"}),
}
ROLES = tuple(ROLE_PERMISSIONS)


def permissions(roles: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The permissions a set of roles grants (unknown role names grant nothing)."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(granted)


# -- reads ---------------------------------------------------------------------------------

# The store's read methods a client may ask the server to run (POST /api/v1/read), by
# repository. Writes have routes of their own, where the server decides who acts;
# paths of server files (prediction batches) stay private.
READ_CALLS: Mapping[str, frozenset[str]] = {
    "runs": frozenset({"get", "resolve", "search", "metric_history"}),
    "datasets": frozenset({"get", "for_run", "runs_using", "recent", "uses"}),
    "artifacts": frozenset({"for_run"}),
    "models": frozenset({"get", "resolve", "for_run", "names", "versions"}),
    "environments": frozenset({"get"}),
    "pipelines": frozenset({"cached_step", "step_of_run", "get", "recent", "is_running"}),
    "releases": frozenset({"aliases", "alias_version", "get", "list", "latest_approved"}),
    "gates": frozenset({"evaluations", "recent", "latest"}),
    "audit": frozenset({"entries", "head", "alias_problems", "verify"}),
    "predictions": frozenset({"profile", "monitored_models"}),
}


# What a pipeline runner writes besides its steps' records (POST /api/v1/pipelines, the
# `pipeline` permission): the pipeline run and its steps (the step cache), and the
# runner's own tags on a step's run, which no record may set.
PIPELINE_CALLS = frozenset({"start", "heartbeat", "update_step", "finish", "set_run_tags"})
RUNNER_TAGS = ("mlops.pipeline", "mlops.step", "mlops.pipeline_run",
               "mlops.notebook_run_name", "mlops.kernel")  # mlops.kernel: warm or cold, why


# -- limits ------------------------------------------------------------------------------

MAX_JSON_BODY = 16 * 1024 * 1024  # a records batch or a call; blobs stream and have none
MAX_RECORDS_PER_BATCH = 10_000

# -- errors on the wire ------------------------------------------------------------------
#
# An error response is `{"error": {"kind": KIND, "message": "one line"}}` with the
# status below; the client raises the matching MlopsError subclass with the message.

class ServerUnreachable(StoreUnavailable):
    """The team server did not answer (down, wrong URL, network)."""


class AuthenticationFailed(PermissionDenied):
    """The token is missing, wrong, revoked or expired."""


class VersionMismatch(MlopsError):
    """The client and the server speak API versions neither accepts."""


class PayloadTooLarge(InvalidInput):
    """A request body is over the server's limit."""


class RateLimited(PermissionDenied):
    """Too many failed tokens from this address: the server waits before it listens again."""


# kind -> (HTTP status, exception class); the first class matching an exception wins,
# so subclasses come before their parents.
ERROR_KINDS: dict[str, tuple[int, type[MlopsError]]] = {
    "authentication": (401, AuthenticationFailed),
    "rate_limited": (429, RateLimited),
    "permission": (403, PermissionDenied),
    "version": (426, VersionMismatch),
    "too_large": (413, PayloadTooLarge),
    "not_found": (404, NotFound),
    "invalid": (422, InvalidInput),
    "conflict": (409, Conflict),
    "integrity": (409, IntegrityError),
    "unavailable": (503, StoreUnavailable),
}


def error_body(exc: MlopsError) -> tuple[int, dict[str, dict[str, str]]]:
    """The status and JSON body that carry `exc` to a client."""
    for kind, (status, cls) in ERROR_KINDS.items():
        if isinstance(exc, cls):
            return status, {"error": {"kind": kind, "message": str(exc)}}
    return 500, {"error": {"kind": "server", "message": str(exc)}}


def error_from(status: int, body: object) -> MlopsError:
    """The exception a client raises for an error response (`body`: the decoded JSON)."""
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("kind") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str):
        message = f"the team server answered HTTP {status}"
    if kind in ERROR_KINDS:
        return ERROR_KINDS[kind][1](message)
    return MlopsError(f"the team server failed: {message}")
