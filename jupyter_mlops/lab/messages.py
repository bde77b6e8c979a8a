"""Error replies of the JupyterLab routes: a status per error category, and
messages that never reveal where things live on the server (paths under the
Jupyter root shown relative to it, `server_paths.without_server_paths`)."""

from __future__ import annotations

from ..errors import (
    Conflict,
    IntegrityError,
    MlopsError,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
)
from ..server_paths import SERVER_PATH, without_server_paths
from ..team_protocol import AuthenticationFailed

__all__ = ["SERVER_PATH", "status_for", "without_server_paths"]

_STATUS: tuple[tuple[type[MlopsError], int], ...] = (
    (NotFound, 404), (AuthenticationFailed, 401), (PermissionDenied, 403),
    (IntegrityError, 409), (Conflict, 409), (StoreUnavailable, 503))


def status_for(error: MlopsError) -> int:
    """The HTTP status of an error: 404, 401 (the team server refused the token), 403,
    409, 503 (the store or team server is unavailable), else 400 (the request was
    refused)."""
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 400)
