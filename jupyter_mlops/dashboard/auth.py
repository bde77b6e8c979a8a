"""Login for the dashboard: a Bokeh auth provider over the credentials file.

A signed cookie named `user` (Panel's convention, so `pn.state.user` works)
carries the login. Unauthenticated requests for a page are sent to /login.
"""

from __future__ import annotations

import html
from typing import Any

from bokeh.server.auth_provider import AuthProvider
from tornado.web import RequestHandler

from .credentials import Credentials

COOKIE = "user"
_LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>jupyter-mlops: sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto}}
label,input,button{{display:block;width:100%;margin:.4rem 0}}
input{{padding:.4rem}}.error{{color:#b00020}}</style></head>
<body><h1>jupyter-mlops</h1><p>Sign in to review releases.</p>
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label>User <input name="username" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit" id="login">Sign in</button></form>
<p class="error">{error}</p></body></html>"""


def _safe_next(value: str | None) -> str:
    """Only local paths: never redirect a login to another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/releases"
    return value


class PasswordAuthProvider(AuthProvider):
    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        super().__init__()

    @property
    def get_user(self):  # noqa: ANN201 - Bokeh's interface
        def user(handler: RequestHandler) -> str | None:
            value = handler.get_secure_cookie(COOKIE, max_age_days=1)
            if value is None:
                return None
            name = value.decode("utf-8")
            return name if name in self.credentials.users else None

        return user

    @property
    def login_url(self) -> str:
        return "/login"

    @property
    def login_handler(self) -> type[RequestHandler]:
        credentials = self.credentials

        class LoginHandler(RequestHandler):
            def get(self) -> None:
                self.write(_LOGIN_PAGE.format(next=html.escape(_safe_next(
                    self.get_argument("next", None))), error=""))

            def post(self) -> None:
                user = self.get_body_argument("username", "")[:64]
                password = self.get_body_argument("password", "")[:1024]
                target = _safe_next(self.get_body_argument("next", None))
                if credentials.check(user, password):
                    self.set_secure_cookie(COOKIE, user, expires_days=1, httponly=True,
                                           samesite="Strict")
                    self.redirect(target)
                    return
                self.set_status(401)
                self.write(_LOGIN_PAGE.format(next=html.escape(target),
                                              error="Wrong user name or password."))

        return LoginHandler

    @property
    def logout_url(self) -> str:
        return "/logout"

    @property
    def logout_handler(self) -> type[RequestHandler]:
        class LogoutHandler(RequestHandler):
            def get(self) -> None:
                self.clear_cookie(COOKIE)
                self.redirect("/login")

        return LogoutHandler


def session_user() -> Any:
    """The signed-in user of the current Panel session."""
    import panel as pn

    return pn.state.user
