"""Starting the dashboard: pages, login, the artifact route, bound to 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tornado.web import HTTPError, RequestHandler

from ..artifacts import ArtifactStore
from ..errors import IntegrityError, InvalidInput, NotFound
from ..project import Project
from .auth import COOKIE, PasswordAuthProvider
from .context import DashboardContext
from .credentials import Credentials

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
_DIGEST = re.compile(r"blake3:[0-9a-f]{64}")


class ArtifactHandler(RequestHandler):
    """GET /artifact/<digest>: a stored report or notebook, for signed-in users only."""

    def initialize(self, store: ArtifactStore, credentials: Credentials | None) -> None:
        self.store = store
        self.credentials = credentials

    def get(self, digest: str) -> None:
        if self.credentials is not None:
            user = self.get_secure_cookie(COOKIE, max_age_days=1)
            if user is None or user.decode() not in self.credentials.users:
                raise HTTPError(403)
        if not _DIGEST.fullmatch(digest):
            raise HTTPError(400, "not an artifact digest")
        try:
            data = self.store.read_bytes(digest)
        except NotFound:
            raise HTTPError(404) from None
        except IntegrityError:
            raise HTTPError(500, "the stored artifact is corrupted") from None
        kind = "text/html" if data.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")) \
            else "application/octet-stream"
        self.set_header("Content-Type", kind)
        self.set_header("Content-Security-Policy", "script-src 'none'")  # reports are evidence
        self.set_header("X-Content-Type-Options", "nosniff")
        self.write(data)


def build(project: Project, credentials: Credentials | None, dev: bool
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pages and the `pn.serve` options; nothing is started."""
    from .pages.audit import audit_page
    from .pages.models import models_page
    from .pages.monitoring import monitoring_page
    from .pages.releases import releases_page
    from .pages.runs import runs_page

    context = DashboardContext(root=project.root, credentials=credentials, dev=dev)

    def page(make: Callable[[DashboardContext], Any]) -> Callable[[], Any]:
        # A plain function (Panel renders a functools.partial as its repr).
        def render() -> Any:
            return make(context)

        return render

    pages = {"releases": page(releases_page), "models": page(models_page),
             "runs": page(runs_page), "monitoring": page(monitoring_page),
             "audit": page(audit_page)}
    options: dict[str, Any] = {
        "extra_patterns": [(r"/artifact/([^/]+)", ArtifactHandler,
                            {"store": ArtifactStore(project.artifacts_dir),
                             "credentials": credentials})],
        "title": "jupyter-mlops",
    }
    if credentials is not None:
        options["auth_provider"] = PasswordAuthProvider(credentials)
        options["cookie_secret"] = credentials.cookie_secret
    return pages, options


def serve(project: Project, *, port: int, address: str, credentials_path: str | None,
          dev: bool, show: bool = False) -> None:
    """Run the dashboard until interrupted."""
    import panel as pn

    from .credentials import load_credentials

    if credentials_path is None and not dev:
        raise InvalidInput("the dashboard needs a credentials file (--auth FILE; create one "
                           "with `mlops credentials add NAME --role reviewer --file FILE`), or "
                           "--dev for a local, login-free development server")
    if dev and address not in LOCAL_ADDRESSES:
        raise InvalidInput(f"--dev serves without login, so only on localhost, not {address}")
    credentials = load_credentials(credentials_path) if credentials_path else None
    pages, options = build(project, credentials, dev and credentials is None)
    if dev and credentials is None:
        print("WARNING: development mode, NO LOGIN: anyone on this machine can act as "
              "you. Never use it for real approvals.", flush=True)
    origin = [f"{address}:{port}"] + ([f"localhost:{port}"] if address == "127.0.0.1" else [])
    pn.serve(pages, port=port, address=address, websocket_origin=origin, show=show,
             **options)
