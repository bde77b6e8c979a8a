"""A 403 for every request whose `Host` is not one the dashboard was started for.

Bokeh checks the `Origin` of its websocket only; a DNS-rebinding page sends
`Host: evil.example` to 127.0.0.1 and reads any HTTP answer. So the first
rule of the tornado application's router catches every request (pages, login,
static files, artifacts, the websocket upgrade) whose `Host` is not in the
allowlist and hands it to `HostRefusedHandler`, before any other handler runs.
"""

from __future__ import annotations

import logging
from typing import Any

from tornado.httputil import HTTPServerRequest
from tornado.routing import Matcher, Rule
from tornado.web import Application, RequestHandler

from ..hosts import host_allowed, origin_host

log = logging.getLogger("jupyter_mlops.dashboard")


class UnknownHost(Matcher):
    """Matches the requests whose `Host` header names no allowed host (or is missing)."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        return None if host_allowed(request.headers.get("Host"), self.allowed) else {}


class HostRefusedHandler(RequestHandler):
    """403, plain text, whatever the method or path: this server is not that host."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def prepare(self) -> None:
        host = (self.request.headers.get("Host") or "")[:100]
        log.warning("dashboard: refused %s %s for Host %r from %s (not an allowed host)",
                    self.request.method, self.request.path[:200], host, self.request.remote_ip)
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(f"403: this dashboard does not answer to the host {host!r} (a defence "
                    "against DNS rebinding). Use the address it was started on, or start it "
                    "with --allow-host NAME.\n")


class MalformedSessionToken(Matcher):
    """Matches a websocket upgrade whose Bokeh session token does not decode: Bokeh
    would accept the upgrade, then fail on the token with a traceback in the log for
    every such request (a cheap way to flood the log). Upgrades from a foreign
    `Origin` are left to Bokeh's own origin check (a 403)."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None
        if not host_allowed(origin_host(request.headers.get("Origin")), self.allowed):
            return None
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol",
                                                            "").split(",")]
        if len(protocols) != 2 or protocols[0] != "bokeh":
            return None  # Bokeh refuses these itself, without a traceback
        from bokeh.util.token import get_token_payload

        try:
            get_token_payload(protocols[1])
        except Exception:  # noqa: BLE001 - any way of not decoding
            return {}
        return None


class BadTokenHandler(RequestHandler):
    """400, plain text: the websocket's session token is not one Bokeh issued."""

    def prepare(self) -> None:
        log.warning("dashboard: refused a websocket from %s: its session token does not "
                    "decode", self.request.remote_ip)
        self.set_status(400)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("400: malformed session token\n")


def refuse_unknown_hosts(app: Application, allowed: frozenset[str]) -> None:
    """Put the host check in front of every route of `app` (a tornado Application),
    then the refusal of websocket upgrades with a token that does not decode."""
    app.default_router.rules.insert(0, Rule(MalformedSessionToken(allowed), BadTokenHandler))
    app.default_router.rules.insert(0, Rule(UnknownHost(allowed), HostRefusedHandler))
