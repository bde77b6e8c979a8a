"""The scoring service (Tornado): POST /predict, GET (and HEAD) /health, /metadata,
/openapi.json.

Every request passes the door first (`guard.RequestPolicy`): a `Host` this
server does not answer to or a browser `Origin` not allowed is a 403 on every
route, an `Expect` other than 100-continue a 417; /predict also needs
`Content-Type: application/json` (415), a body under the size limit (413,
decided from the headers before the body is kept; with `Expect: 100-continue`
every refusal is sent before the body), UTF-8 (415 for UTF-16/32, 400 for other
bytes), JSON no deeper than a small limit and no unpaired surrogate (400).
Then the inputs are checked against the model's signature: a wrong field is a
422 naming it, and so is an input the model itself cannot score. None of these
is a 500, and each refusal is one line in the service's log.

`/health` answers 200 `{"status": "ok"}` when all is well, 200
`{"status": "degraded", "reasons": [...]}` while the service answers
predictions but something needs a look (the log can't be written or rows are
spilled, the alias can't be followed, a new version failed to load and the old
one is still served), and 503 `{"status": "unavailable"}` only when no model
is loaded: a load balancer keeps a degraded service, whose answers are right.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from ..monitoring.predlog import INPUT_PREFIX
from ..monitoring.profile import model_outputs
from ..project import Project
from .contract import Invalid, check_instances, openapi
from .guard import MIB, Refusal, RequestPolicy, check_encoding, check_unicode, not_utf8
from .holder import Loaded, ModelHolder, ModelNotLoaded
from .inputs import quiet_feature_names_warning
from .logger import Block, storable
from .logwriter import LogFeed
from .supervision import Periodic, Watch, log_to_stderr, printable, report

service_log = logging.getLogger("jupyter_mlops.scoring")

ROUTES_TEXT = "POST /predict, GET /health, GET /metadata, GET /openapi.json"
CLOSE_CONNECTIONS_SECONDS = 10  # at stop: how long requests being answered may finish


@dataclass(frozen=True)
class Service:
    """What every handler of one service shares."""

    holder: ModelHolder
    logger: Any  # where rows go: a LogFeed (or NoLogger, --no-log); tests give a BufferedLogger
    policy: RequestPolicy
    watch: Watch | None = None  # what /health reports on (None: only whether a model is loaded)


class Base(tornado.web.RequestHandler):
    """JSON replies; `Host` and `Origin` checked before any route answers."""

    ALLOW = "GET, HEAD, OPTIONS"
    refusal: str | None = None  # set when refused: the one line the access log writes

    def initialize(self, service: Service) -> None:
        self.holder = service.holder
        self.logger = service.logger
        self.policy = service.policy
        self.watch = service.watch

    def prepare(self) -> None:
        refusal = self.door_refusal()
        if refusal is not None:
            self.refuse(refusal)

    def door_refusal(self) -> Refusal | None:
        """The Host/Origin refusal for this request, or None (then CORS headers are set)."""
        headers = self.request.headers
        origin = headers.get("Origin")
        refusal = (self.policy.check_host(headers.get("Host"))
                   or self.policy.check_origin(origin)
                   or self.policy.check_expect(headers.get("Expect")))
        if self.policy.cors_origins:
            self.set_header("Vary", "Origin")
        if refusal is None and self.policy.cors_allows(origin):
            self.set_header("Access-Control-Allow-Origin", origin.strip())
        return refusal

    def options(self, *args: str) -> None:
        """CORS preflight: methods and headers are granted only to a `--cors-origin`."""
        self.set_header("Allow", self.ALLOW)
        if self.policy.cors_allows(self.request.headers.get("Origin")):
            self.set_header("Access-Control-Allow-Methods", self.ALLOW)
            self.set_header("Access-Control-Allow-Headers", "Content-Type")
            self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    def refuse(self, refusal: Refusal) -> None:
        self.refusal = refusal.message
        self.reply(refusal.status, {"message": refusal.message})

    def reply(self, status: int, payload: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def loaded_model(self) -> Loaded | None:
        """The model being served; when there is none, answers 503 and returns None."""
        loaded = self.holder.current
        if loaded is None:
            self.refuse(Refusal(503, f"no model is loaded for {self.holder.ref}: its version "
                                     "could not be loaded (the service's log says why); "
                                     "point the alias at a version that loads"))
        return loaded

    def head(self, *args: str) -> None:
        """HEAD answers as GET would, without the body (Tornado drops it, keeps the length)."""
        self.get(*args)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", self.ALLOW)
            self.reply(405, {"message": f"{self.request.method} is not allowed on "
                                        f"{printable(self.request.path, 100)}; it answers "
                                        f"{self.ALLOW}"})
            return
        self.reply(status_code, {"message": self._reason})


@tornado.web.stream_request_body
class PredictHandler(Base):
    """POST /predict. The body is streamed in so its size is enforced as it arrives."""

    ALLOW = "POST, OPTIONS"

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._received = 0
        self._deferred: Refusal | None = None
        refusal = self.door_refusal()
        if refusal is None and self.request.method == "POST":
            headers = self.request.headers
            refusal = (self.policy.check_content_type(headers.get("Content-Type"))
                       or self.policy.check_length(headers.get("Content-Length")))
        self.request.connection.set_max_body_size(self.policy.drain_limit)
        if refusal is None:
            return
        declared = _declared_length(self.request.headers.get("Content-Length"))
        waiting = "Expect" in self.request.headers  # sends the body only after a 100 Continue
        if (self.request.method == "POST" and not waiting
                and (declared or 0) <= self.policy.drain_limit):
            self._deferred = refusal  # answered once the body is read and dropped
        else:
            if declared is not None:  # not read at all: the connection closes after the reply
                self.request.connection.set_max_body_size(declared)
            self.refuse(refusal)

    def data_received(self, chunk: bytes) -> None:
        if self._deferred is not None or self._finished:
            return
        self._received += len(chunk)
        if self._received > self.policy.max_body_bytes:  # a chunked body, no Content-Length
            self._deferred = self.policy.too_large(self.policy.max_body_bytes, more=True)
            self._chunks = []
            return
        self._chunks.append(chunk)

    def post(self) -> None:
        if self._deferred is not None:
            self.refuse(self._deferred)
            return
        started = time.perf_counter()
        loaded = self.loaded_model()
        if loaded is None:
            return
        version = loaded.version.version
        body = b"".join(self._chunks)
        refusal = self.policy.check_depth(body) or check_encoding(body)
        if refusal is None:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                refusal = not_utf8(body, exc)
        if refusal is not None:
            self._log_failure(started, version, "invalid", refusal.message)
            self.refuse(refusal)
            return
        try:
            parsed = json.loads(text.removeprefix("\ufeff") or "null")  # a UTF-8 BOM is ignored
            refusal = check_unicode(text, parsed)
            if refusal is not None:
                self._log_failure(started, version, "invalid", refusal.message)
                self.refuse(refusal)
                return
            numeric = loaded.numeric
            matrix = numeric.matrix(parsed) if numeric is not None else None
            instances = check_instances(parsed, loaded.columns) if matrix is None else []
        except RecursionError:  # guarded by check_depth; kept so it can never be a 500
            self._log_failure(started, version, "invalid", "body: JSON nested too deep")
            self.refuse(Refusal(400, "body: JSON nested too deep"))
            return
        except ValueError as exc:
            self._log_failure(started, version, "invalid", f"body: not JSON ({exc})")
            self.reply(422, {"message": "body: not valid JSON", "field": "body"})
            return
        except Invalid as exc:
            self._log_failure(started, version, "invalid", str(exc))
            self.reply(422, {"message": str(exc), "field": exc.field})
            return
        if matrix is not None:
            self._predict_matrix(started, loaded, matrix)
        else:
            self._predict(started, loaded, instances)

    def _predict_matrix(self, started: float, loaded: Loaded, matrix: Any) -> None:
        """The fast path: `matrix` holds every instance's features in the model's order."""
        outputs = self._outputs(started, loaded, loaded.numeric.model_input(matrix))
        if outputs is None:
            return
        latency = (time.perf_counter() - started) * 1000
        ids = _request_ids(len(outputs))
        self.logger.add_block(Block(ids=ids, at=time.time(), version=loaded.version.version,
                                    latency_ms=latency, outputs=outputs, names=loaded.log_names,
                                    inputs=matrix))
        self._answer(loaded, outputs.tolist(), ids)

    def _predict(self, started: float, loaded: Loaded, instances: list[dict]) -> None:
        import pandas as pd

        frame = pd.DataFrame(instances, columns=[name for name, _ in loaded.columns])
        scored = self._outputs(started, loaded, frame)
        if scored is None:
            return
        outputs = scored.tolist()
        latency = (time.perf_counter() - started) * 1000
        now = time.time()
        ids = _request_ids(len(outputs))
        version = loaded.version.version
        self.logger.add([{"request_id": rid, "at": now, "version": version,
                          "latency_ms": latency, "status": "ok", "error": "", "output": out,
                          **{INPUT_PREFIX + k: v for k, v in instance.items()}}
                         for rid, out, instance in zip(ids, outputs, instances, strict=True)])
        self._answer(loaded, outputs, ids)

    def _answer(self, loaded: Loaded, outputs: list[float], ids: list[str]) -> None:
        self.reply(200, {"predictions": outputs, "model": loaded.version.ref,
                         "request_ids": ids})

    def _outputs(self, started: float, loaded: Loaded, model_input: Any) -> Any:
        """The model's outputs for `model_input`, a float64 array; None when it could not
        score them (answered: 422 for the input's fault, 500 for the model's)."""
        import numpy as np

        version = loaded.version.version
        try:
            with np.errstate(all="ignore"):  # an overflow is seen below, not printed per request
                outputs = np.asarray(model_outputs(loaded.model, model_input), dtype=np.float64)
        except (ArithmeticError, ValueError, TypeError) as exc:
            # The model refused these values (e.g. sklearn's "Input X contains infinity or
            # a value too large for dtype('float64')" for 1e308 after scaling): the input's
            # fault, so a 422 saying what the model said.
            self._unscorable(started, version, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # the model itself failed: log it, answer 500 as JSON
            self._log_failure(started, version, "error", f"{type(exc).__name__}: {exc}")
            self.reply(500, {"message": "the model failed on this input"})
            return None
        finite = np.isfinite(outputs)
        if not finite.all():
            where = int(np.argmin(finite))
            self._unscorable(started, version, f"instances[{where}]: the model's output is "
                                               f"{outputs[where]}, not a finite number")
            return None
        return outputs

    def _unscorable(self, started: float, version: int | None, problem: str) -> None:
        """422: the inputs passed the contract but the model could not score them."""
        self._log_failure(started, version, "error", problem)
        message = (f"the model could not score this input: {printable(problem, 300)}; "
                   "check that the values are in the range the model was trained on")
        self.refusal = message
        self.reply(422, {"message": message, "field": "instances"})

    def _log_failure(self, started: float, version: int | None, status: str,
                     error: str) -> None:
        self.logger.add([{"request_id": uuid.uuid4().hex, "at": time.time(),
                          "version": version, "status": status, "error": storable(error[:500]),
                          "latency_ms": (time.perf_counter() - started) * 1000,
                          "output": float("nan")}])


class HealthHandler(Base):
    """200 ok, 200 degraded with the reasons, or 503 unavailable (no model loaded)."""

    def get(self) -> None:
        loaded = self.holder.current
        reasons = self.watch.reasons() if self.watch is not None else []
        if loaded is None:
            self.refusal = f"no model is loaded for {self.holder.ref}"
            self.reply(503, {"status": "unavailable", "model": None,
                             "message": f"no model is loaded for {self.holder.ref}",
                             "reasons": reasons})
        elif reasons:
            self.reply(200, {"status": "degraded", "model": loaded.version.ref,
                             "reasons": reasons})
        else:
            self.reply(200, {"status": "ok", "model": loaded.version.ref})


class MetadataHandler(Base):
    def get(self) -> None:
        loaded = self.loaded_model()
        if loaded is None:
            return
        v = loaded.version
        self.reply(200, {"model": v.name, "version": v.version, "ref": v.ref,
                         "serving": self.holder.ref, "run_id": v.run_id, "digest": v.digest,
                         "input_datasets": list(v.input_datasets),
                         "signature": v.signature, "switches": self.holder.switches})


class OpenAPIHandler(Base):
    def get(self) -> None:
        loaded = self.loaded_model()
        if loaded is not None:
            self.reply(200, openapi(loaded, self.holder.ref))


class UnknownRouteHandler(Base):
    """Any other path: the door's checks first, then a JSON 404 listing the routes."""

    ALLOW = "OPTIONS"

    def prepare(self) -> None:
        super().prepare()
        if not self._finished and self.request.method != "OPTIONS":
            self.reply(404, {"message": f"no such route; this service answers {ROUTES_TEXT}"})


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The access log: one line per refused request or server error, nothing per success."""
    request = handler.request
    status = handler.get_status()
    where = f"{request.method} {printable(request.uri or '')} from {request.remote_ip}"
    refusal = getattr(handler, "refusal", None)
    if refusal is not None:
        service_log.warning("refused %d %s: %s", status, where, printable(refusal))
    elif status >= 500:
        service_log.error("%d %s", status, where)


def make_app(holder: ModelHolder, logger: Any, policy: RequestPolicy,
             watch: Watch | None = None) -> tornado.web.Application:
    quiet_feature_names_warning()  # models fitted on DataFrames may be given a matrix
    args = {"service": Service(holder, logger, policy, watch)}
    return tornado.web.Application([
        (r"/predict", PredictHandler, args), (r"/health", HealthHandler, args),
        (r"/metadata", MetadataHandler, args), (r"/openapi.json", OpenAPIHandler, args),
    ], default_handler_class=UnknownRouteHandler, default_handler_args=args,
        log_function=log_request)


class NoLogger:
    """For load tests of the service itself (`--no-log`): nothing is logged."""

    def add(self, rows: list[dict[str, Any]]) -> None:
        return None

    def add_block(self, block: Block) -> None:
        return None

    def reasons(self) -> list[str]:
        return []

    def close(self) -> None:
        return None


async def serve_requests(holder: ModelHolder, logger: LogFeed | NoLogger,
                         sockets: list[socket.socket], policy: RequestPolicy, *,
                         poll_seconds: float = 1.0, parent: int | None = None,
                         says: bool = True) -> None:
    """One serving process: answer on `sockets` (shared with the service's other
    serving processes) and follow the alias, until SIGINT/SIGTERM or until the
    process `parent` (the service's supervisor) is gone; then stop accepting, let
    the requests being answered finish, and close the log's feed.

    A version that cannot be loaded (untrusted, corrupted) does not stop the
    service: it says so in one line and answers 503 on /predict until the alias
    points at one that loads. With `says` False (all serving processes but the
    first) the following's problems are shown by /health, not said again.
    """
    log_to_stderr()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    shown = _shown(holder.project)

    def follow() -> None:
        """A version that can't be loaded is said once and shown by /health (`refused`);
        the following itself goes on. A serving process whose supervisor is gone stops."""
        if parent is not None and os.getppid() != parent:
            loop.call_soon_threadsafe(stop.set)
            return
        try:
            holder.refresh()
        except ModelNotLoaded as exc:
            if says:
                report(str(exc))

    follower = Periodic(f"following {holder.ref}", follow, poll_seconds, shown=shown,
                        says=says)
    watch = Watch(holder, logger, follower)
    server = HTTPServer(make_app(holder, logger, policy, watch),
                        max_body_size=policy.max_body_bytes,
                        max_buffer_size=policy.max_body_bytes + MIB)
    accepting = _accept_one_at_a_time(server, sockets)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(follower.run(stop))
    try:
        await stop.wait()
    finally:  # every request answered has handed its rows to the log's writer
        stop.set()
        accepting.stop()  # no new connection...
        try:  # ...and the open ones (keep-alive clients) closed once their answers are sent
            await asyncio.wait_for(server.close_all_connections(), CLOSE_CONNECTIONS_SECONDS)
        except TimeoutError:
            service_log.warning("requests still running after %d s at stop; their rows are "
                                "logged if they were answered", CLOSE_CONNECTIONS_SECONDS)
        for outcome in await asyncio.gather(task, return_exceptions=True):
            if isinstance(outcome, Exception):  # a bug: said
                report(f"a periodic task failed: {type(outcome).__name__}: {outcome}")
        logger.close()


class _Accepting:
    """The listening sockets one serving process takes connections from."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sockets = sockets

    def stop(self) -> None:
        io_loop = IOLoop.current()
        for sock in self.sockets:
            io_loop.remove_handler(sock)


def _accept_one_at_a_time(server: HTTPServer, sockets: list[socket.socket]) -> _Accepting:
    """Take connections from `sockets`, shared with the service's other serving
    processes, one per wake-up.

    Tornado's own handler accepts every queued connection at once, so the
    process that wakes first takes them all (four clients connecting together
    all land on one process). Taking one leaves the next to whichever process
    is free: a busy one is slower to wake, so connections go to the idle.
    """
    io_loop = IOLoop.current()

    def accept(sock: socket.socket) -> None:
        try:
            connection, address = sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another process took it, or the client gave up
        server.handle_stream(IOStream(connection, max_buffer_size=server.max_buffer_size,
                                      read_chunk_size=server.read_chunk_size), address)

    for sock in sockets:
        io_loop.add_handler(sock, lambda fd, events, sock=sock: accept(sock), IOLoop.READ)
    return _Accepting(sockets)


def _shown(project: Project) -> Callable[[str], str]:
    """Problems as /health shows them: paths relative to the project's root."""
    root = str(project.root).rstrip("/") + "/"

    def shown(text: str) -> str:
        return text.replace(root, "")

    return shown


def _request_ids(count: int) -> list[str]:
    """`count` random 128-bit request ids in hex, from one read of the system's randomness."""
    text = os.urandom(16 * count).hex()
    return [text[i:i + 32] for i in range(0, 32 * count, 32)]


def _declared_length(content_length: str | None) -> int | None:
    try:
        return int(content_length.split(",")[0]) if content_length else None
    except ValueError:
        return None
