"""The team server's Tornado handlers.

Every request passes the door in `Base.prepare`, in this order: the `Host`
allowlist (403: DNS rebinding), the `X-Mlops-Api` handshake (426 naming both
versions), the bearer token (401; a locked-out address gets 429 with
Retry-After, checked before any token), the method (405), the route's
permission for the token's roles (403). Only then does a handler run. Errors
are `team_protocol.error_body`; nothing a client sends is a 500.

Store calls run on one worker thread (`TeamServer.call`): the event loop
keeps streaming blobs while a batch is being committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.httputil
import tornado.ioloop
import tornado.netutil
import tornado.web

from ..artifacts import ArtifactStore, IncomingBlob
from ..dashboard.throttle import BackoffPolicy, Throttle
from ..errors import InvalidInput, MlopsError, NotFound, PermissionDenied, StoreUnavailable
from ..fsspec_artifacts import FsspecArtifactStore, IncomingFsspecBlob
from ..hosts import host_allowed
from ..scoring.guard import nesting_exceeds
from ..store import Store
from ..store.tokens import Token
from ..team_protocol import (
    API_VERSION,
    MAX_JSON_BODY,
    MIN_CLIENT_API,
    TOKEN_PREFIX,
    AuthenticationFailed,
    PayloadTooLarge,
    RateLimited,
    VersionMismatch,
    error_body,
    permissions,
)
from ..validation import MAX_BLOB_SIZE, check_digest
from . import openapi, reads
from .records import SequenceGap, apply_batch, check_batch
from .routes import ROUTES

log = logging.getLogger("jupyter_mlops.teamserver")

API_HEADER = "X-Mlops-Api"
CHUNK = 1 << 20
MAX_JSON_DEPTH = 64
MAX_DIGESTS = 10_000
# Failed tokens per client address: 20 free, then 30 s doubling up to 15 min.
TOKEN_FAILURES = BackoffPolicy(free_failures=20, first_lockout=30.0, max_lockout=900.0,
                               forget_after=3600.0)


def server_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jupyter-mlops")
    except PackageNotFoundError:
        return "0.1.0"


def client_address(request: tornado.httputil.HTTPServerRequest, behind_proxy: bool) -> str:
    """Who sent `request`, for the failed-token limit: behind a proxy, the entry the
    proxy appended to X-Forwarded-For (the last); the entries before it and X-Real-IP
    are whatever the client wrote, so they are not read (Tornado's xheaders would take
    X-Real-IP, which the Hub's proxy passes through: a new address per guess)."""
    forwarded = request.headers.get("X-Forwarded-For", "") if behind_proxy else ""
    address = forwarded.split(",")[-1].strip()
    if tornado.netutil.is_valid_ip(address):  # not a name or terminal escapes for the log
        return address
    return request.remote_ip or "unknown"


@dataclass
class TeamServer:
    """What every handler of one server shares."""

    store: Store
    artifacts: ArtifactStore | FsspecArtifactStore  # a folder, or an fsspec URL
    hosts: frozenset[str]
    home: Path = Path(".")  # the server's home: registry.toml, relative evaluation data
    hub: Any = None  # a hub.HubIdentity when server.toml has [hub]: Hub tokens accepted too
    stall_seconds: float = 60.0  # a request body that pauses this long is dropped
    behind_proxy: bool = False  # the client is the last X-Forwarded-For entry (client_address)
    throttle: Throttle = field(default_factory=lambda: Throttle(TOKEN_FAILURES))
    db: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="mlops-store"))

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a store call on the store's thread (one at a time, in order).

        A store that is unavailable (PostgreSQL down, its disk full) is said to the
        client in general terms, and in full in the server's log: the store's own
        message names the database's host, port, user and name, which are no business
        of a client, nor of anyone without a token (tokens are checked in the
        database, so a request without a valid one gets this answer too)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.db, function, *args)
        except StoreUnavailable as exc:
            log.warning("the store is unavailable: %s", exc)
            raise StoreUnavailable("the team server cannot use its database right now (its "
                                   "log says why); try again later: a batch sent again is "
                                   "applied once") from None


def _unusable(token: Token) -> str:
    """Why a token that was issued is refused, for whoever holds it."""
    from datetime import UTC, datetime

    def when(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")

    state = (f"was revoked on {when(token.revoked_at)}" if token.revoked_at is not None
             else f"expired on {when(token.expires_at or 0)}")
    return (f"the token {token.shown}… of user {token.user!r} {state}: ask the server's "
            "admin for a new one, then `mlops login`")


class MethodNotAllowed(InvalidInput):
    """The route exists but does not take this method."""


@tornado.web.stream_request_body
class Base(tornado.web.RequestHandler):
    """The door (see the module), JSON bodies read up to `MAX_JSON_BODY`, JSON errors."""

    token: Token | None = None

    def initialize(self, server: TeamServer, methods: dict[str, str]) -> None:
        self.server = server
        self.methods = methods  # method -> permission
        self._chunks: list[bytes] = []
        self._received = 0
        self._last_data = time.monotonic()
        self._watchdog: tornado.ioloop.PeriodicCallback | None = None

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header(API_HEADER, str(API_VERSION))

    async def prepare(self) -> None:
        self.request.connection.set_max_body_size(2 * MAX_JSON_BODY)  # drained past the limit
        self._watch_for_stalls()
        try:
            self._check_host()
            self._check_version()
            self.token = await self._authenticate()
            self._check_permission()
            self._check_declared_length()
        except MlopsError as exc:
            # Refused before its body was read, Tornado drops the connection after the
            # answer: say so, or a proxy (the Hub's) reuses it and its next request fails.
            self.set_header("Connection", "close")
            self.fail(exc)

    def _check_host(self) -> None:
        host = self.request.headers.get("Host")
        if not host_allowed(host, self.server.hosts):
            raise PermissionDenied(
                f"Host {str(host)[:100]!r} is not a name this server answers to (allowed: "
                f"{', '.join(sorted(self.server.hosts))}); start it with --allow-host NAME")

    def _check_version(self) -> None:
        given = self.request.headers.get(API_HEADER)
        if given is None:
            return
        try:
            api = int(given)
        except ValueError:
            raise VersionMismatch(f"{API_HEADER}: {given[:40]!r} is not an API version "
                                  "number") from None
        if api < MIN_CLIENT_API:
            raise VersionMismatch(
                f"this client speaks API {api}, the team server (jupyter-mlops "
                f"{server_version()}) speaks API {API_VERSION} and needs at least "
                f"{MIN_CLIENT_API}: upgrade jupyter-mlops on this machine")
        if api > API_VERSION:
            raise VersionMismatch(
                f"this client speaks API {api}, the team server (jupyter-mlops "
                f"{server_version()}) speaks API {API_VERSION}: upgrade jupyter-mlops on the "
                "server, or use an older client")

    async def _authenticate(self) -> Token:
        address = client_address(self.request, self.server.behind_proxy)
        self.request.remote_ip = address  # the access log names the client, not the proxy
        throttle = self.server.throttle
        locked = throttle.locked_until(address)
        if locked is not None:
            wait = max(1, math.ceil(locked - time.time()))
            self.set_header("Retry-After", str(wait))
            raise RateLimited(f"too many wrong tokens from {address}: try again in {wait} s")
        header = self.request.headers.get("Authorization")
        if not header:
            raise AuthenticationFailed("no token: send Authorization: Bearer TOKEN (`mlops "
                                       "login URL` stores one; the admin makes them with "
                                       "`mlops server token create`)")
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        token = None
        if scheme.lower() == "bearer" and secret.startswith(TOKEN_PREFIX):
            token = await self.server.call(self.server.store.tokens.authenticate, secret)
            if token is None:
                issued = await self.server.call(self.server.store.tokens.issued, secret)
                if issued is not None:  # revoked or expired: a real token, not a guess
                    raise AuthenticationFailed(_unusable(issued))
                throttle.failure(address)  # only a guess that could have been right counts
        elif scheme.lower() in ("bearer", "token") and secret and self.server.hub is not None:
            token = await self.server.hub.token_for(secret)  # cached by HubAuth
            if token is None:
                throttle.failure(address)
        if token is None:
            raise AuthenticationFailed("the token is wrong, revoked or expired: ask the "
                                       "server's admin for a new one, then `mlops login`")
        return token

    def _check_permission(self) -> None:
        method = self.request.method or ""
        if method not in self.methods:
            if not self.methods:
                raise NotFound(f"no route {self.request.path[:200]!r}: see /api/openapi.json")
            raise MethodNotAllowed(f"{method} is not a method of {self.request.path}: it "
                                   f"takes {', '.join(sorted(self.methods))}")
        needed = self.methods[method]
        assert self.token is not None
        if needed not in permissions(self.token.roles):
            from ..team_protocol import ROLE_PERMISSIONS

            granting = [r for r, p in ROLE_PERMISSIONS.items() if needed in p]
            raise PermissionDenied(
                f"user {self.token.user!r} (roles: {', '.join(self.token.roles)}) may not "
                f"{method} {self.request.path}: it needs the {needed!r} permission, which "
                f"roles {', '.join(granting)} grant; ask the server's admin")

    def _check_declared_length(self) -> None:
        declared = self.request.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.body_limit():
            raise PayloadTooLarge(f"the request body is {int(declared)} bytes; this route "
                                  f"takes at most {self.body_limit()}")

    def body_limit(self) -> int:
        return MAX_JSON_BODY

    def _watch_for_stalls(self) -> None:
        """Drop the connection when the body stops arriving for `stall_seconds`: a
        client that declares a body and never sends it would otherwise hold the socket
        (and a blob upload's temporary file) for as long as it stays connected."""
        if self.request.headers.get("Content-Length", "0") == "0" and \
                "Transfer-Encoding" not in self.request.headers:
            return
        seconds = self.server.stall_seconds
        self._watchdog = tornado.ioloop.PeriodicCallback(self._drop_if_stalled,
                                                         seconds * 1000 / 4)
        self._watchdog.start()

    def _drop_if_stalled(self) -> None:
        if time.monotonic() - self._last_data > self.server.stall_seconds:
            log.warning("dropped %s %s from %s: its body stalled for %g s",
                        self.request.method, (self.request.path or "")[:200],
                        self.request.remote_ip, self.server.stall_seconds)
            self._stop_watching()
            self.request.connection.close()  # on_connection_close drops an upload

    def _stop_watching(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None

    def on_connection_close(self) -> None:
        self._stop_watching()
        super().on_connection_close()

    def on_finish(self) -> None:
        self._stop_watching()

    def data_received(self, chunk: bytes) -> None:
        self._last_data = time.monotonic()
        self._received += len(chunk)
        if self._received <= MAX_JSON_BODY:
            self._chunks.append(chunk)
        else:
            self._chunks = []  # read and dropped: the client still gets its 413

    def json_body(self) -> Any:
        """The request's JSON. Raises `PayloadTooLarge` or `InvalidInput`."""
        if self._received > MAX_JSON_BODY:
            raise PayloadTooLarge(f"the request body is over {MAX_JSON_BODY} bytes: send "
                                  "smaller batches")
        body = b"".join(self._chunks)
        if nesting_exceeds(body, MAX_JSON_DEPTH):
            raise InvalidInput(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InvalidInput(f"the body is not JSON: {str(exc)[:200]}") from None

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, allow_nan=False))

    def fail(self, exc: MlopsError, **extra: Any) -> None:
        status, body = error_body(exc)
        if isinstance(exc, MethodNotAllowed):
            status = 405
            self.set_header("Allow", ", ".join(sorted(self.methods)))
        body["error"].update(extra)
        if not self._finished:
            self.reply(body, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Whatever escaped a handler: JSON, never an HTML page or a traceback."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, MlopsError):
            self.fail(exc)
            return
        if isinstance(exc, tornado.web.HTTPError) and status_code < 500:
            message = exc.log_message or self._reason
            kind = "invalid"
        else:
            message = "the team server failed; its log says why"
            kind = "server"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"kind": kind, "message": message}}))


class VersionHandler(Base):
    def get(self) -> None:
        self.reply({"server": server_version(), "api": API_VERSION,
                    "min_client_api": MIN_CLIENT_API})


class WhoamiHandler(Base):
    def get(self) -> None:
        assert self.token is not None
        self.reply({"user": self.token.user, "roles": list(self.token.roles),
                    "permissions": sorted(permissions(self.token.roles)),
                    "expires_at": self.token.expires_at})


class RecordsHandler(Base):
    async def post(self) -> None:
        assert self.token is not None
        try:
            stream, records = check_batch(self.json_body())
            if any(r["op"] == "predictions" for r in records) and \
                    "predictions" not in permissions(self.token.roles):
                raise PermissionDenied(
                    f"user {self.token.user!r} (roles: {', '.join(self.token.roles)}) may "
                    "not log predictions: it takes the 'predictions' permission (roles "
                    "runner, admin); nothing of the batch was applied")
            result = await self.server.call(apply_batch, self.server.store,
                                            self.server.artifacts, self.token.user,
                                            stream, records, self.server.home)
        except SequenceGap as exc:
            self.fail(exc, applied_seq=exc.applied_seq)
            return
        except MlopsError as exc:
            self.fail(exc)
            return
        self.reply(result)


class MissingBlobsHandler(Base):
    async def post(self) -> None:
        try:
            body = self.json_body()
            digests = body.get("digests") if isinstance(body, dict) else None
            if not isinstance(digests, list):
                raise InvalidInput('the body must be {"digests": ["blake3:...", ...]}')
            if len(digests) > MAX_DIGESTS:
                raise PayloadTooLarge(f"{len(digests)} digests: ask about at most "
                                      f"{MAX_DIGESTS} at a time")
            for digest in digests:
                check_digest(digest)
            artifacts = self.server.artifacts
            missing = await self.server.call(
                lambda: [d for d in dict.fromkeys(digests) if artifacts.stored_size(d) is None])
        except MlopsError as exc:
            self.fail(exc)
            return
        self.reply({"missing": missing})


class BlobHandler(Base):
    """PUT streams the body into the artifact store, hashed as it comes; GET streams out."""

    incoming: IncomingBlob | IncomingFsspecBlob | None = None

    def body_limit(self) -> int:
        return MAX_BLOB_SIZE if self.request.method == "PUT" else MAX_JSON_BODY

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished or self.request.method != "PUT":
            return
        try:
            self.digest = check_digest(self.path_args[0])
            size = self.server.artifacts.stored_size(self.digest)
            if size is not None:  # known bytes: the body is drained, nothing stored
                self.reply({"digest": self.digest, "size": size, "stored": False})
                return
            self.request.connection.set_max_body_size(MAX_BLOB_SIZE)
            self.incoming = self.server.artifacts.receive()
        except MlopsError as exc:
            self.fail(exc)

    failed: MlopsError | None = None

    def data_received(self, chunk: bytes) -> None:
        self._last_data = time.monotonic()
        if self.incoming is None:
            return
        try:
            self.incoming.write(chunk)
        except OSError as exc:  # disk full, I/O error: the rest is drained, nothing kept
            self.incoming.abort()
            self.incoming = None
            self.failed = StoreUnavailable(f"the artifact store could not take the blob "
                                           f"({exc.strerror or exc}); nothing was kept")

    async def put(self, digest: str) -> None:
        if self.failed is not None:
            self.fail(self.failed)
            return
        incoming, self.incoming = self.incoming, None
        assert incoming is not None
        try:
            stored = await asyncio.get_running_loop().run_in_executor(
                None, incoming.finish, self.digest)
        except MlopsError as exc:
            self.fail(exc)
            return
        except OSError as exc:
            self.fail(StoreUnavailable(f"the artifact store could not keep the blob "
                                       f"({exc.strerror or exc}); nothing was kept"))
            return
        self.reply({"digest": self.digest, "size": incoming.size, "stored": stored})

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self.incoming is not None:  # the client went away mid-upload: keep nothing
            self.incoming.abort()
            self.incoming = None

    def on_finish(self) -> None:
        self.on_connection_close()

    async def get(self, digest: str) -> None:
        try:
            size = self.server.artifacts.stored_size(check_digest(digest))
            if size is None:
                raise NotFound(f"artifact {digest} is missing from the artifact store")
            blob = self.server.artifacts.open(digest)
        except MlopsError as exc:
            self.fail(exc)
            return
        with blob:
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Length", str(size))
            self.set_header("X-Mlops-Digest", digest)
            while chunk := blob.read(CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()


class ReadHandler(Base):
    """POST /api/v1/read: one of the store's read queries (`reads.READ_CALLS`)."""

    async def post(self) -> None:
        try:
            repository, method, args, kwargs = reads.check_call(self.json_body())
            result = await self.server.call(reads.run_read, self.server.store, repository,
                                            method, args, kwargs)
        except MlopsError as exc:
            self.fail(exc)
            return
        self.reply({"result": result})


class PipelinesHandler(Base):
    """POST /api/v1/pipelines: a pipeline runner's writes (`pipelines.PIPELINE_CALLS`)."""

    async def post(self) -> None:
        from . import pipelines

        assert self.token is not None
        try:
            call, args = pipelines.check_pipeline_call(self.json_body())
            result = await self.server.call(pipelines.run_pipeline_call, self.server.store,
                                            self.token.user, call, args)
        except MlopsError as exc:
            self.fail(exc)
            return
        self.reply({"result": result})


class GovernanceHandler(Base):
    """A registry action (teamserver.governance) run with the token's user and roles as
    the identity, inside the server's transaction; its answer is tagged JSON."""

    async def govern(self, key: str, action: str, *args: Any) -> None:
        from . import governance

        assert self.token is not None
        try:
            body = self.json_body()
            registry = governance.registry_for(self.server.home, self.server.artifacts.root,
                                               self.server.store)
            result = await self.server.call(getattr(governance, action), registry,
                                            self.token, *args, body)
        except MlopsError as exc:
            self.fail(exc)
            return
        self.reply({key: _encoded(result)})


class ReleasesHandler(GovernanceHandler):
    """A release request, made with the token's user as the requester."""

    async def post(self) -> None:
        await self.govern("request", "request_release")


class DecisionHandler(GovernanceHandler):
    """Approve or reject a release request, with the token's user as the reviewer."""

    async def post(self, number: str) -> None:
        from . import governance

        try:
            request_id = governance.request_id(number)
        except MlopsError as exc:
            self.fail(exc)
            return
        verb = self.request.path.rsplit("/", 1)[-1]
        await self.govern("request", "decide", request_id, verb)


class AliasesHandler(GovernanceHandler):
    """An unprotected alias moved, with the token's user as the actor."""

    async def post(self) -> None:
        await self.govern("version", "set_alias")


class GatesHandler(GovernanceHandler):
    """The gates of a version evaluated on the server's evaluation data, and stored."""

    async def post(self) -> None:
        await self.govern("results", "run_gates")


class MonitoringHandler(Base):
    """POST /api/v1/monitor/report and /monitor/labels: the server's prediction log."""

    async def post(self) -> None:
        from . import monitoring

        action = {"report": monitoring.monitor_report,
                  "labels": monitoring.add_labels}[self.request.path.rsplit("/", 1)[-1]]
        try:
            answer = await self.server.call(action, self.server.home,
                                            self.server.artifacts.root, self.server.store,
                                            self.json_body())
        except MlopsError as exc:
            self.fail(exc)
            return
        self.reply(answer)


class ImportHandler(Base):
    """POST /api/v1/import: a batch of an embedded project's rows (`mlops push`)."""

    async def post(self) -> None:
        from . import imports

        assert self.token is not None
        try:
            project, items = imports.check_import(self.json_body())
            result = await self.server.call(imports.apply_checked, self.server.store,
                                            self.server.artifacts, self.token.user,
                                            project, items)
        except MlopsError as exc:
            self.fail(exc)
            return
        self.reply(result)


def _encoded(value: Any) -> Any:
    from ..store import codec

    return codec.encode(value)


class OpenAPIHandler(Base):
    def get(self) -> None:
        self.reply(openapi.document(server_version()))


class UnknownRouteHandler(Base):
    """Any other path: the door first (so nothing is told without a token), then 404."""


def make_app(server: TeamServer, prefix: str = "") -> tornado.web.Application:
    """The application: one URL rule per path of `ROUTES`, its handler told which
    methods it takes and the permission of each.

    With a `prefix` (a Hub service's `/services/NAME/`, which the Hub's proxy
    keeps in the path) every route answers both with and without it.
    """
    handlers = {cls.__name__: cls for cls in (VersionHandler, WhoamiHandler, RecordsHandler,
                                                MissingBlobsHandler, BlobHandler,
                                                ReadHandler, PipelinesHandler, ReleasesHandler,
                                                DecisionHandler, AliasesHandler, GatesHandler,
                                                ImportHandler, MonitoringHandler,
                                                OpenAPIHandler)}
    rules: dict[str, tuple[type, dict[str, str]]] = {}
    for route in ROUTES:
        handler, methods = rules.setdefault(route.pattern, (handlers[route.handler], {}))
        methods[route.method] = route.permission
    prefixes = [""] + ([re.escape(prefix.rstrip("/"))] if prefix.strip("/") else [])
    return tornado.web.Application(
        [(start + pattern, handler, {"server": server, "methods": methods})
         for start in prefixes for pattern, (handler, methods) in rules.items()],
        default_handler_class=UnknownRouteHandler,
        default_handler_args={"server": server, "methods": {}},
        log_function=_log_request)


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """One line per refused request or failure; nothing per success."""
    status = handler.get_status()
    if status >= 400:
        request = handler.request
        user = getattr(getattr(handler, "token", None), "user", "-")
        log.warning("%d %s %s from %s (user %s)", status, request.method,
                    (request.path or "")[:200], request.remote_ip, user)
