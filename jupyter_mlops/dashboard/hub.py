"""Sign-in through JupyterHub for the dashboard beside a team server, when the dashboard
runs as a Hub service (`mlops server dashboard` in `c.JupyterHub.services`).

The Hub gives a service with a `url` what OAuth needs: `JUPYTERHUB_CLIENT_ID`,
`JUPYTERHUB_OAUTH_CALLBACK_URL`, `JUPYTERHUB_SERVICE_PREFIX` (the service's
path behind the Hub's proxy, `/services/NAME/`), `JUPYTERHUB_API_TOKEN` and
`JUPYTERHUB_API_URL`. Then nobody types a token or a password here:

1. a page asked for without a session goes to `PREFIX/login`, which sends the
   browser to the Hub's authorize URL (`HubOAuth.login_url`, a PKCE challenge
   and a state kept in a signed cookie);
2. the Hub logs the person in (its own login page, once per Hub session) and,
   if its RBAC grants them `access:services!service=NAME`, sends them back to
   `PREFIX/oauth_callback` with a code; else the Hub answers 403 itself;
3. the callback checks the state, trades the code for a Hub token
   (`HubOAuth.token_for_code`) and resolves it with the team server's own rules
   (`teamserver.hub.HubIdentity`: the access scope, then roles from Hub groups
   by server.toml's `[hub]`, the function the server's routes use). No role:
   403. Else a dashboard session opens; its cookie holds a random session id,
   and the Hub token stays in this process.

Every request after resolves the session's Hub token again through HubAuth's
cache (`[hub] cache_seconds`), so removing someone from a Hub group or from the
service's role ends their access within that time.
"""

from __future__ import annotations

import asyncio
import html
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import InvalidInput, MlopsError, PermissionDenied
from ..store.tokens import Token
from .authenticator import COOKIE, COOKIE_DAYS, TokenSessions
from .sessions import SessionStore

if TYPE_CHECKING:
    from ..teamserver.hub import HubConfig

OAUTH_ENV = ("JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_OAUTH_CALLBACK_URL",
             "JUPYTERHUB_SERVICE_PREFIX")
log = logging.getLogger("jupyter_mlops.dashboard")


def under_hub(environ: Mapping[str, str]) -> bool:
    """Whether the Hub started this process as a service with OAuth (a service with a
    `url`): then people sign in through the Hub, not with a team token."""
    return bool(environ.get("JUPYTERHUB_CLIENT_ID"))


class HubSignIn(TokenSessions):
    """Hub OAuth logins to dashboard sessions with the team server's users and roles."""

    def __init__(self, config: HubConfig, environ: Mapping[str, str],
                 sessions: SessionStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """Raises `InvalidInput` when the Hub's environment is incomplete."""
        missing = [name for name in OAUTH_ENV if not environ.get(name)]
        if missing:
            raise InvalidInput(f"{', '.join(missing)} is not set: the dashboard signs people "
                               "in through the Hub only as a Hub service with a url "
                               "(c.JupyterHub.services, README 'On a JupyterHub')")
        from jupyterhub.services.auth import HubOAuth

        from ..teamserver.hub import HubIdentity, access_scopes

        self.identity = HubIdentity(config, environ)  # raises InvalidInput without the API
        self.prefix = "/" + environ["JUPYTERHUB_SERVICE_PREFIX"].strip("/") + "/"
        callback = urlsplit(environ["JUPYTERHUB_OAUTH_CALLBACK_URL"]).path
        if callback != self.prefix + "oauth_callback":
            raise InvalidInput(f"the service's oauth_redirect_uri is {callback}: the "
                               f"dashboard takes the Hub's answer at {self.prefix}"
                               "oauth_callback (leave oauth_redirect_uri unset)")
        hub_base = "/" + environ.get("JUPYTERHUB_BASE_URL", "/").strip("/")
        self.hub_prefix = hub_base.rstrip("/") + "/hub/"
        self.oauth = HubOAuth(api_token=environ["JUPYTERHUB_API_TOKEN"],
                              api_url=environ["JUPYTERHUB_API_URL"],
                              oauth_client_id=environ["JUPYTERHUB_CLIENT_ID"],
                              oauth_redirect_uri=environ["JUPYTERHUB_OAUTH_CALLBACK_URL"],
                              base_url=self.prefix, hub_prefix=self.hub_prefix,
                              hub_host=environ.get("JUPYTERHUB_HOST", ""),
                              access_scopes=access_scopes(environ),
                              cache_max_age=config.cache_seconds)
        self.sessions = SessionStore(clock=clock) if sessions is None else sessions
        self.clock = clock
        # Sessions live in memory only, so a secret per process loses nothing.
        self.cookie_secret = secrets.token_urlsafe(48)
        # HubAuth's cache and its HTTP client live in one thread with its own event loop,
        # so pages (synchronous, on Bokeh's loop) and handlers (async) share one cache
        # and one client. A page waits only when the answer is not cached.
        self._resolver = ThreadPoolExecutor(1, thread_name_prefix="mlops-hub")
        self._loop = asyncio.new_event_loop()

    def __repr__(self) -> str:  # never the cookie secret
        return f"HubSignIn({self.prefix}, {self.sessions!r})"

    def resolve(self, hub_token: str) -> Future[Token | None]:
        """The Hub user of `hub_token` as a `Token` with the server's roles for them (None:
        the Hub knows no such token); the future raises `PermissionDenied` (no access
        scope, no role) or `StoreUnavailable` (the Hub does not answer)."""
        return self._resolver.submit(self._loop.run_until_complete,
                                     self.identity.token_for(hub_token))

    async def sign_in_with_code(self, code: str, code_verifier: str | None) -> str:
        """Trade an OAuth `code` for a Hub token and open a session; its id.

        Raises `PermissionDenied` when the Hub user may not use the service or has
        no role here, `MlopsError` when the Hub refuses the code or does not answer.
        """
        try:
            hub_token = await self.oauth.token_for_code(code, sync=False,
                                                        code_verifier=code_verifier)
        except Exception as exc:  # tornado's HTTPClientError, a refused connection, ...
            raise MlopsError(f"the JupyterHub did not take the sign-in code ({exc}); sign "
                             "in again") from None
        token = await asyncio.wrap_future(self.resolve(hub_token))
        if token is None:
            raise PermissionDenied("the JupyterHub does not know the token it just gave")
        log.info("dashboard: Hub user %r (roles %s) signed in", token.user,
                 ",".join(token.roles))
        return self.sessions.create(token.user, hub_token)

    def token_for(self, session_id: str | None) -> Token | None:
        """The live session's user and roles, resolved again (HubAuth's cache); None
        when there is no such session, or the Hub no longer lets its user in (the
        session then ends) or does not answer."""
        session = self.sessions.get(session_id)
        if session is None:
            return None
        try:
            token = self.resolve(session.fingerprint).result()
        except PermissionDenied as exc:
            token = None
            log.info("dashboard: session of %r ended: %s", session.user, exc)
        except MlopsError as exc:
            log.error("dashboard: sessions refused, the JupyterHub failed: %s", exc)
            return None
        if token is None or token.user != session.user:
            self.sessions.delete(session_id)
            return None
        return token

    def sign_out(self, session_id: str | None) -> None:
        session = self.sessions.get(session_id)
        self.sessions.delete(session_id)
        if session is not None:
            log.info("dashboard: Hub user %r signed out", session.user)

    def close(self) -> None:
        self._resolver.shutdown(wait=True)
        self._loop.close()


def hub_handlers(auth: HubSignIn) -> dict[str, type]:
    """The tornado handlers of Hub sign-in: `login` (to the Hub), `callback` (from the
    Hub), `logout` (the session ends, then the Hub's logout)."""
    from tornado.httputil import url_concat

    from .auth import _PageHandler, cookie_session, safe_next

    class HubLoginHandler(_PageHandler):
        def get(self) -> None:
            target = safe_next(self.get_argument("next", None))
            if not target.startswith(auth.prefix):
                target = auth.prefix
            verifier, challenge, method = auth.oauth.generate_pkce_code_challenge()
            state = auth.oauth.set_state_cookie(self, next_url=target, code_verifier=verifier)
            self.redirect(url_concat(auth.oauth.login_url, {
                "code_challenge": challenge, "code_challenge_method": method,
                "state": state}))

    class HubCallbackHandler(_PageHandler):
        async def get(self) -> None:
            error = self.get_argument("error", "")
            code = self.get_argument("code", "")
            state = self.get_argument("state", "")
            if error or not code or not state:
                self.refuse(400, "The JupyterHub sign-in did not finish "
                                 f"({error or 'no code or state'}): open the dashboard again.")
                return
            cookie_state = self.get_signed_cookie(auth.oauth.get_state_cookie_name(state))
            auth.oauth.clear_oauth_state_cookies(self)
            if cookie_state is None or cookie_state.decode("ascii", "replace") != state:
                self.refuse(403, "This sign-in was started in another browser or expired: "
                                 "open the dashboard again.")
                return
            target = auth.oauth.get_next_url(state)
            verifier = auth.oauth.get_code_verifier(state)
            auth.oauth.clear_oauth_state(state)
            try:
                session_id = await auth.sign_in_with_code(code, verifier)
            except PermissionDenied as exc:
                log.warning("dashboard: Hub sign-in refused: %s", exc)
                self.refuse(403, str(exc))
                return
            except MlopsError as exc:
                log.error("dashboard: Hub sign-in failed: %s", exc)
                self.refuse(503, str(exc))
                return
            auth.sign_out(cookie_session(self))  # a new id at each sign-in, never reused
            self.set_signed_cookie(COOKIE, session_id, expires_days=COOKIE_DAYS,
                                   httponly=True, samesite="Lax", path=auth.prefix)
            self.redirect(target)

        def refuse(self, status: int, message: str) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish("<!doctype html><meta charset=\"utf-8\"><title>jupyter-mlops</title>"
                        f"<h1>jupyter-mlops</h1><p>{html.escape(message)}</p>")

    class HubLogoutHandler(_PageHandler):
        def get(self) -> None:
            auth.sign_out(cookie_session(self))
            self.clear_cookie(COOKIE, path=auth.prefix)
            self.redirect(auth.hub_prefix + "logout")

    return {"login": HubLoginHandler, "callback": HubCallbackHandler,
            "logout": HubLogoutHandler}
