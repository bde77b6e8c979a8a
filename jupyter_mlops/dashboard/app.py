"""Starting the dashboard: pages, login, the artifact route, the Host check.

Bound to 127.0.0.1 by default. Every request and the Bokeh websocket must
name an allowed host (`hosts.allowed_hosts`: the bound address, the loopback
names, and `--allow-host` names, each a plain name: no wildcard); the
websocket's Origin must too. A page asked for with a trailing slash
(`/releases/`) is redirected to its one URL (`/releases`), where its relative
links (scripts, the websocket, the login) resolve.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..console_log import send_to_stderr
from ..errors import InvalidInput
from ..fsspec_artifacts import open_artifact_store
from ..hosts import allowed_hosts, cannot_listen, check_host_name
from ..project import Project
from .authenticator import COOKIE, Authenticator
from .context import DashboardContext
from .credentials import CredentialsFile, roles_warning
from .downloads import ArtifactHandler

if TYPE_CHECKING:
    from ..teamserver.home import ServerHome

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
PAGES = ("releases", "models", "model", "runs", "monitoring", "audit")  # and "/", the landing page


def build(context: DashboardContext, artifacts: str | Path
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pages and the `pn.serve` options (reports downloaded from `artifacts`, a
    folder or an fsspec URL); nothing is started."""
    from .auth import HubAuthProvider, PasswordAuthProvider
    from .hub import HubSignIn
    from .pages.audit import audit_page
    from .pages.home import home_page
    from .pages.layout import known_theme_only
    from .pages.models import model_page, models_page
    from .pages.monitoring import monitoring_page
    from .pages.releases import releases_page
    from .pages.runs import runs_page

    auth = context.auth

    def page(make: Callable[[DashboardContext], Any]) -> Callable[[], Any]:
        # A plain function (Panel renders a functools.partial as its repr).
        def render() -> Any:
            try:
                known_theme_only()
                return make(context)
            except Exception as exc:
                # Panel would show the failure's message as HTML, and a message can
                # quote the request (`?theme=<img onerror=...>`): said here as text,
                # the traceback in the server's log.
                logging.getLogger(__name__).exception("the page %s failed", make.__name__)
                return _failed_page(exc)

        return render

    makers = {"releases": releases_page, "models": models_page, "model": model_page,
              "runs": runs_page, "monitoring": monitoring_page, "audit": audit_page}
    pages = {name: page(makers[name]) for name in PAGES}
    pages["/"] = page(home_page)  # the landing page, in place of Panel's index
    options: dict[str, Any] = {
        "extra_patterns": [(r"/artifact/([^/]+)", ArtifactHandler,
                            {"store": open_artifact_store(artifacts), "auth": auth})],
        "title": "jupyter-mlops",
        # No pages use pn.state.location, and Panel's Location parser fails on an
        # IPv6 Host ("[::1]:5006"), a 500 for an allowed host.
        "location": False,
    }
    if isinstance(auth, HubSignIn):
        options["auth_provider"] = HubAuthProvider(auth)
        options["cookie_secret"] = auth.cookie_secret
        options["include_cookies"] = [COOKIE]
        options["prefix"] = auth.prefix
    elif auth is not None:
        options["auth_provider"] = PasswordAuthProvider(auth)
        options["cookie_secret"] = auth.cookie_secret
        options["include_cookies"] = [COOKIE]  # the only cookie a page session needs
    return pages, options


def _failed_page(problem: Exception) -> Any:
    """A page whose function raised: one escaped line, nothing of the request as HTML."""
    import panel as pn

    from .pages.layout import message

    return pn.pane.HTML(message(f"this page failed ({type(problem).__name__}); the "
                                "dashboard's log has the details", error=True))


def websocket_origins(allowed: frozenset[str], port: int) -> list[str]:
    """Bokeh's `allow_websocket_origin` entries (`host:port`) for the allowed hosts.

    Bokeh cannot express an IPv6 literal there, so a page opened as
    `http://[::1]:PORT` gets no websocket: use localhost or 127.0.0.1.
    """
    return sorted(f"{name}:{port}" for name in allowed if ":" not in name)


def redirect_trailing_slashes(app: Any, names: Iterable[str] = PAGES, prefix: str = "") -> None:
    """Send `/NAME/` (and `/NAME//`) to `/NAME`, the query kept, for each page of `app`.

    Bokeh answers `/releases/` with the page too, but its relative links then
    point under `/releases/` (scripts 404, the login redirect goes to
    `/releases/login`), so a bookmark or `next=` with a trailing slash ends on
    a 404. Put in front of Bokeh's routes of `app` (a tornado Application); `prefix`
    is the path the pages are under (`/services/NAME` behind a JupyterHub), and the
    bare prefix goes to `PREFIX/`, the index, for the same reason (`./login` from
    `/services/NAME` is `/services/login`).
    """
    prefix = prefix.rstrip("/")
    from tornado.routing import PathMatches, Rule
    from tornado.web import RequestHandler

    class CanonicalPage(RequestHandler):
        def get(self, name: str = "") -> None:
            query = self.request.query
            self.redirect(f"{prefix}/{name}" + (f"?{query}" if query else ""))

        head = get

    pattern = re.escape(prefix) + "/({})/+".format("|".join(re.escape(name) for name in names))
    app.default_router.rules.insert(0, Rule(PathMatches(pattern), CanonicalPage))
    if prefix:
        app.default_router.rules.insert(0, Rule(PathMatches(re.escape(prefix)), CanonicalPage))


def open_authenticator(credentials_path: str | None, dev: bool,
                       address: str) -> Authenticator | None:
    """Check the start-up options and load the credentials; raises `MlopsError`."""
    if credentials_path is None and not dev:
        raise InvalidInput("the dashboard needs a credentials file (--auth FILE; create one "
                           "with `mlops credentials add NAME --file FILE`), or --dev for a "
                           "local, login-free development server")
    if dev and address not in LOCAL_ADDRESSES:
        raise InvalidInput(f"--dev serves without login, so only on localhost, not {address}")
    if credentials_path is None:
        return None
    source = CredentialsFile(credentials_path)
    warning = roles_warning(credentials_path, source.current())
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return Authenticator(source)


def serve(project: Project, *, port: int, address: str, credentials_path: str | None,
          dev: bool, allow_hosts: Iterable[str] = (), show: bool = False) -> None:
    """Run the dashboard until interrupted; raises `MlopsError` when it may not start.

    Raises `InvalidInput` for an `--allow-host` value that is not a plain host
    name (a wildcard such as `*` would switch the Host and Origin checks off).
    """
    extra_hosts = [check_host_name(name) for name in allow_hosts]
    auth = open_authenticator(credentials_path, dev, address)
    _log_to_stderr()
    context = DashboardContext(root=project.root, auth=auth, dev=dev and auth is None)
    if context.dev:
        print("WARNING: development mode, NO LOGIN: anyone on this machine can act as "
              "you. Never use it for real approvals.", flush=True)
    _run(context, project.artifacts_dir, port=port, address=address, extra_hosts=extra_hosts,
         show=show)


def serve_beside_server(home: ServerHome, *, port: int, address: str,
                        allow_hosts: Iterable[str] = (), show: bool = False,
                        environ: Mapping[str, str] | None = None) -> None:
    """Run the dashboard on a team server's database until interrupted: people sign in
    with their team token and act as its user, with its roles (`team.py`); or, when a
    JupyterHub started it as a service (`hub.under_hub`), through the Hub's OAuth, with
    roles from Hub groups by server.toml's [hub] (`hub.py`), under the service's prefix.

    Raises `NotFound` / `PermissionDenied` for a missing or open home,
    `StoreUnavailable` when its database can't be reached, `InvalidInput` for a
    bad `--allow-host` or, under a Hub, a server.toml without [hub].
    """
    from .hub import HubSignIn, under_hub
    from .team import TeamServerSide, TokenAuthenticator

    environ = os.environ if environ is None else environ
    extra_hosts = [check_host_name(name) for name in allow_hosts]
    hub_sign_in = None
    if under_hub(environ):
        if home.config.hub is None:
            raise InvalidInput(f"{home.config_path} has no [hub] section: under a JupyterHub "
                               "the dashboard takes roles from Hub groups as the server does "
                               "(README 'On a JupyterHub')")
        hub_sign_in = HubSignIn(home.config.hub, environ)
    server = TeamServerSide.open(home)
    try:
        _log_to_stderr()
        auth = hub_sign_in or TokenAuthenticator(server)
        context = DashboardContext(root=home.path, auth=auth, server=server)
        if hub_sign_in is None:
            print(f"dashboard beside the team server {home.path}: sign in with a team token",
                  flush=True)
            origins: list[str] = []
        else:
            print(f"dashboard beside the team server {home.path} at {hub_sign_in.prefix}: "
                  "sign in through the JupyterHub", flush=True)
            origins = public_origins(environ)
            if not origins:
                print("WARNING: JUPYTERHUB_PUBLIC_URL is not set, so the pages' websocket "
                      "will refuse the Hub's address: set c.JupyterHub.public_url",
                      file=sys.stderr, flush=True)
            extra_hosts += [origin.rpartition(":")[0] for origin in origins]
        _run(context, server.artifacts_location, port=port, address=address,
             extra_hosts=extra_hosts, show=show, extra_origins=origins)
    finally:
        server.close()
        if hub_sign_in is not None:
            hub_sign_in.close()


def public_origins(environ: Mapping[str, str]) -> list[str]:
    """The `host:port` a browser reaches a Hub service at (`JUPYTERHUB_PUBLIC_URL`, or
    `JUPYTERHUB_HOST` for a service on its own domain): the websocket's Origin then."""
    found = []
    for name in ("JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_HOST"):
        parts = urlsplit(environ.get(name, ""))
        if parts.hostname:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found.append(f"{parts.hostname}:{port}")
    return found


def _run(context: DashboardContext, artifacts: str | Path, *, port: int, address: str,
         extra_hosts: list[str], show: bool, extra_origins: Iterable[str] = ()) -> None:
    import panel as pn

    from .hostguard import refuse_unknown_hosts

    allowed = allowed_hosts(address, extra_hosts)
    pages, options = build(context, artifacts)
    try:
        server = pn.serve(pages, port=port, address=address, show=show, start=False,
                          websocket_origin=[*websocket_origins(allowed, port), *extra_origins],
                          **options)
    except OSError as exc:
        raise cannot_listen(exc, address, port) from None
    # Bokeh builds the tornado application; the Host check goes in front of its routes,
    # then the redirects of trailing slashes.
    redirect_trailing_slashes(server._tornado, prefix=options.get("prefix", ""))
    refuse_unknown_hosts(server._tornado, allowed)
    server.start()
    server.io_loop.start()


def _log_to_stderr() -> None:
    """Sign-ins, lockouts and refusals go to stderr, one line each."""
    send_to_stderr(logging.getLogger("jupyter_mlops.dashboard"),
                   "%(asctime)s %(levelname)s %(message)s")
