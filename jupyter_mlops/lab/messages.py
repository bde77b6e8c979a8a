"""Error replies of the JupyterLab routes: a status per error category, and
messages that never reveal where things live on the server.

Core errors name files to help the person at the terminal (`artifact ... is
missing from /home/ana/proj/.mlops/artifacts`, `MLOPS_HOME='/srv/x' holds no
.mlops/`). Over HTTP that is a map of the server for whoever reads the reply,
so paths under the Jupyter root are shown relative to it and any other
absolute path is replaced by `<server path>`.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import (
    Conflict,
    IntegrityError,
    MlopsError,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
)
from ..team_protocol import AuthenticationFailed

SERVER_PATH = "<server path>"

# A quoted absolute path, whole (it may hold spaces: messages quote paths with repr), or
# a "/" that starts a token (not inside a relative name, URL or number) and what follows
# up to a space, quote or bracket.
_ABSOLUTE = re.compile(r"""(?P<quote>['"])(?P<quoted>/[^'"]*)(?P=quote)"""
                       r"|(?<![\w.:/~%-])/[^\s'\"`<>()\[\]{}]+")
_STATUS: tuple[tuple[type[MlopsError], int], ...] = (
    (NotFound, 404), (AuthenticationFailed, 401), (PermissionDenied, 403),
    (IntegrityError, 409), (Conflict, 409), (StoreUnavailable, 503))


def status_for(error: MlopsError) -> int:
    """The HTTP status of an error: 404, 401 (the team server refused the token), 403,
    409, 503 (the store or team server is unavailable), else 400 (the request was
    refused)."""
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 400)


def without_server_paths(message: str, root_dir: str) -> str:
    """`message` with absolute paths made relative to `root_dir`, or hidden."""
    root = str(Path(root_dir).resolve())

    def relative(path: str) -> str:
        if path in (root, root_dir):
            return "."
        for prefix in (root, root_dir.rstrip("/")):
            if path.startswith(prefix + "/"):
                return path[len(prefix) + 1:]
        return SERVER_PATH

    def shown(match: re.Match[str]) -> str:
        if match.group("quoted") is not None:
            quote = match.group("quote")
            return quote + relative(match.group("quoted")) + quote
        path = match.group(0).rstrip(".,;:")
        return relative(path) + match.group(0)[len(path):]

    return _ABSOLUTE.sub(shown, message)
