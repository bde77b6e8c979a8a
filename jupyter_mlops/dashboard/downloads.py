"""GET /artifact/<digest>[?name=NAME]: stored bytes as a download, for signed-in users.

An artifact is whatever a run stored, so it is never rendered on the
dashboard's origin: always an attachment, opaque bytes, no sniffing, a sandbox
CSP (`http_headers.download_headers`). Errors are one short JSON line that
names the digest, never a server path: 400 for a malformed digest, 403 when
not signed in, 404 when the blob is missing, 409 when its bytes no longer
match the digest.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from tornado.web import RequestHandler

from ..artifacts import ArtifactStore, check_artifact_name
from ..errors import IntegrityError, InvalidInput, MlopsError, NotFound
from ..http_headers import download_headers
from .auth import request_user
from .authenticator import Authenticator

DIGEST = re.compile(r"blake3:[0-9a-f]{64}")
log = logging.getLogger("jupyter_mlops.dashboard")


@dataclass(frozen=True)
class Download:
    """What to answer for a download request: a status, then bytes or a message."""

    status: int
    data: bytes = b""
    message: str = ""


def fetch_artifact(store: ArtifactStore, digest: str) -> Download:
    """Read and verify one artifact; refusals carry a message without server paths."""
    if not DIGEST.fullmatch(digest):
        return Download(400, message=f"{digest[:80]!r} is not an artifact digest "
                                     "(blake3: and 64 lowercase hex digits)")
    try:
        return Download(200, store.read_bytes(digest))
    except NotFound:
        return Download(404, message=f"artifact {digest} is not in this project's store")
    except IntegrityError:
        log.error("dashboard: artifact %s is corrupted on disk (%s)", digest,
                  store.path_for(digest))
        return Download(409, message=f"artifact {digest} is corrupted: its stored bytes no "
                                     "longer match its digest; restore it from a backup or "
                                     "re-run the step that made it (`mlops verify` lists "
                                     "damaged blobs)")
    except MlopsError as exc:
        log.error("dashboard: artifact %s refused: %s", digest, exc)
        return Download(409, message=f"artifact {digest} cannot be served; the dashboard's "
                                     "log says why")
    except OSError as exc:
        log.error("dashboard: artifact %s unreadable: %s", digest, exc)
        return Download(500, message=f"artifact {digest} could not be read; the dashboard's "
                                     "log says why")


def download_name(digest: str, requested: str | None) -> str:
    """The file name offered to the browser: `?name=` if it is a valid artifact name."""
    if requested:
        try:
            return check_artifact_name(requested)
        except InvalidInput:
            pass
    return f"artifact-{digest.rsplit(':', 1)[-1][:16]}"


class ArtifactHandler(RequestHandler):
    """The tornado adapter over `fetch_artifact`; signed-in users only (unless --dev)."""

    def initialize(self, store: ArtifactStore, auth: Authenticator | None) -> None:
        self.store = store
        self.auth = auth

    def get(self, digest: str) -> None:
        if self.auth is not None and request_user(self, self.auth) is None:
            self.refuse(403, "sign in first: artifacts are for signed-in users")
            return
        result = fetch_artifact(self.store, digest)
        if result.status != 200:
            self.refuse(result.status, result.message)
            return
        for name, value in download_headers(
                download_name(digest, self.get_query_argument("name", None))).items():
            self.set_header(name, value)
        self.finish(result.data)

    def refuse(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"message": message}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Whatever went wrong (a bad query string...), a JSON line, never a traceback."""
        self.refuse(status_code, self._reason)
