"""Login for the dashboard: a Bokeh auth provider and its tornado handlers.

The handlers are thin: the rules (passwords or team tokens, back-off,
sessions) live in an authenticator: `Authenticator` (a credentials file) or,
beside a team server, `team.TokenAuthenticator`. Each names the fields of its
form (`login_fields`), checks them (`sign_in_form`) and says what a refusal
reads (`refused_message`). The cookie `mlops_session` carries a random session id,
signed by tornado; the session itself is kept server-side. The login form
carries tornado's XSRF token (double submit: cookie and form field).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from bokeh.server.auth_provider import AuthProvider
from tornado.web import HTTPError, RequestHandler

from .authenticator import COOKIE, COOKIE_DAYS, Authenticator, SignIn

if TYPE_CHECKING:
    from .hub import HubSignIn
    from .team import TokenAuthenticator

    AnyAuthenticator = Authenticator | TokenAuthenticator | HubSignIn

DEFAULT_NEXT = "/"
MAX_NEXT = 2000
_LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>jupyter-mlops: sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto}}
label,input,button{{display:block;width:100%;margin:.4rem 0}}
input{{padding:.4rem}}.error{{color:#b00020}}</style></head>
<body><h1>jupyter-mlops</h1><p>Sign in to review releases.</p>
<form method="post" action="/login">
{xsrf}
<input type="hidden" name="next" value="{next}">
{fields}
<button type="submit" id="login">Sign in</button></form>
<p class="error">{error}</p></body></html>"""
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a same-origin path, else `/`.

    Accepted: printable ASCII starting with exactly one `/`, no backslash, no
    scheme or host; once percent-decoded still one leading `/`, no backslash
    and no control character. Browsers drop tabs and newlines and read `\\` as
    `/`, so `/\\t/evil.example` or `/\\evil.example` would leave the site.
    """
    if not value or len(value) > MAX_NEXT:
        return DEFAULT_NEXT
    if not all(33 <= ord(c) <= 126 for c in value) or not _is_local_path(value):
        return DEFAULT_NEXT
    decoded = unquote(value)
    if any(ord(c) < 32 or ord(c) == 127 for c in decoded) or not _is_local_path(decoded):
        return DEFAULT_NEXT
    return value


def _is_local_path(value: str) -> bool:
    if "\\" in value or not value.startswith("/") or value.startswith("//"):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


class _PageHandler(RequestHandler):
    """Our own pages: no framing, no sniffing, no caching."""

    def set_default_headers(self) -> None:
        for name, value in _PAGE_HEADERS.items():
            self.set_header(name, value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A short text line, never a traceback."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")


def login_handler(auth: AnyAuthenticator) -> type[RequestHandler]:
    """The GET/POST /login handler class, bound to `auth`."""

    class LoginHandler(_PageHandler):
        def get(self) -> None:
            self.page(safe_next(self.get_argument("next", None)), "")

        def post(self) -> None:
            target = safe_next(self.get_body_argument("next", None))
            try:
                self.check_xsrf_cookie()
            except HTTPError:
                self.set_status(403)
                self.page(target, "This sign-in form expired or was sent from another site, "
                                  "so it was refused. The form is fresh now: sign in again.")
                return
            result = auth.sign_in_form(lambda name: self.get_body_argument(name, ""),
                                       self.request.remote_ip or "")
            if result.ok:
                self.start_session(result, target)
            else:
                self.refuse(result, target)

        def start_session(self, result: SignIn, target: str) -> None:
            auth.sign_out(cookie_session(self))  # a new id at each sign-in, never reused
            self.set_signed_cookie(COOKIE, result.session_id or "", expires_days=COOKIE_DAYS,
                                   httponly=True, samesite="Strict")
            self.redirect(target)

        def refuse(self, result: SignIn, target: str) -> None:
            if result.locked_until is not None:
                self.set_status(429)
                self.set_header("Retry-After", str(max(1, round(result.locked_until
                                                                 - auth.clock()))))
                self.page(target, result.retry_message(auth.clock()))
            elif result.unavailable:
                self.set_status(503)
                self.page(target, "Sign-in is unavailable: the dashboard cannot use its "
                                  "credentials file. The administrator finds why in its log.")
            else:
                self.set_status(401)
                self.page(target, auth.refused_message)

        def page(self, target: str, error: str) -> None:
            self.write(_LOGIN_PAGE.format(xsrf=self.xsrf_form_html(), next=html.escape(target),
                                          fields=auth.login_fields, error=html.escape(error)))

    return LoginHandler


def logout_handler(auth: AnyAuthenticator) -> type[RequestHandler]:
    """The GET /logout handler class: ends the session server-side, then the cookie."""

    class LogoutHandler(_PageHandler):
        def get(self) -> None:
            auth.sign_out(cookie_session(self))
            self.clear_cookie(COOKIE)
            self.redirect("/login")

    return LogoutHandler


class PasswordAuthProvider(AuthProvider):
    """Bokeh's hooks: who is signed in (every page and websocket), where to log in."""

    def __init__(self, auth: AnyAuthenticator) -> None:
        self.auth = auth
        super().__init__()

    @property
    def get_user(self):  # noqa: ANN201 - Bokeh's interface
        auth = self.auth

        def user(handler: RequestHandler) -> str | None:
            return request_user(handler, auth)

        return user

    @property
    def login_url(self) -> str:
        return "/login"

    @property
    def login_handler(self) -> type[RequestHandler]:
        return login_handler(self.auth)

    @property
    def logout_url(self) -> str:
        return "/logout"

    @property
    def logout_handler(self) -> type[RequestHandler]:
        return logout_handler(self.auth)


class HubAuthProvider(PasswordAuthProvider):
    """The same hooks, with sign-in through the JupyterHub (`hub.HubSignIn`): `login`
    sends the browser to the Hub, `oauth_callback` brings it back."""

    def __init__(self, auth: HubSignIn) -> None:
        from .hub import hub_handlers

        self.handlers = hub_handlers(auth)
        super().__init__(auth)

    @property
    def login_handler(self) -> type[RequestHandler]:
        return self.handlers["login"]

    @property
    def logout_handler(self) -> type[RequestHandler]:
        return self.handlers["logout"]

    @property
    def endpoints(self) -> list[tuple[str, type[RequestHandler]]]:
        return [*super().endpoints, ("/oauth_callback", self.handlers["callback"])]


def cookie_session(handler: RequestHandler) -> str | None:
    """The session id in a request's cookie, if its signature holds."""
    value = handler.get_signed_cookie(COOKIE, max_age_days=COOKIE_DAYS)
    return value.decode("ascii", "replace") if value else None


def request_user(handler: RequestHandler, auth: AnyAuthenticator) -> str | None:
    """The signed-in user of an HTTP request (or websocket upgrade), else None."""
    return auth.user_for(cookie_session(handler))


def session_user() -> Any:
    """The current Panel session's login: its signed session cookie, or None.

    Opaque on purpose: `DashboardContext.identity` turns it into a user (and
    roles) only while the session is live, so a page never trusts a name.
    """
    import panel as pn

    return pn.state.cookies.get(COOKIE)
