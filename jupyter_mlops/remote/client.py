"""The HTTP client of the team server: one keep-alive connection per thread.

Standard library `http.client`: it keeps a connection open, streams a request
body from a file object and a response body into one, and needs no new
dependency (urllib3 is only installed here as someone else's dependency). Every
answer goes through `team_protocol.error_from`, so a 403 is a `PermissionDenied`
with the server's message whatever the call; a connection that fails is a
`ServerUnreachable` naming the URL and what to do.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from typing import IO, Any

import blake3

from ..errors import Conflict, IntegrityError, MlopsError
from ..hashing import format_digest
from ..team_protocol import API_PREFIX, API_VERSION, ServerUnreachable, VersionMismatch, error_from

CHUNK = 1 << 20
MAX_ERROR_BODY = 64 * 1024
MAX_JSON_ANSWER = 256 * 1024 * 1024
USER_AGENT = "jupyter-mlops/0.1.0"


class SequenceGap(Conflict):
    """The server's mark for a stream is below the batch's first record: earlier ones are
    missing (still spooled elsewhere); the batch is kept and sent again later."""

    def __init__(self, message: str, applied_seq: int) -> None:
        super().__init__(message)
        self.applied_seq = applied_seq


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an error came with; None when the server did not answer."""
    return getattr(exc, "status", None)


def retryable(exc: BaseException) -> bool:
    """Whether sending the same request later may work: no answer, a 5xx, a 429, a 401
    (the user may log in again), a 426 (the user may upgrade) or a sequence gap."""
    status = status_of(exc)
    return (isinstance(exc, (ServerUnreachable, SequenceGap)) or status is None
            or status >= 500 or status in (401, 426, 429))


class Client:
    """Requests to one team server with one token; safe to share between threads.

    Raises, from every call: `ServerUnreachable` (no answer), the `MlopsError`
    subclass matching the server's error kind (`AuthenticationFailed`,
    `PermissionDenied`, `VersionMismatch`, `InvalidInput`, ...), `SequenceGap`.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        parts = urllib.parse.urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._base = parts.path.rstrip("/") + API_PREFIX
        self._local = threading.local()

    # -- connection ------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                                   context=ssl.create_default_context(),
                                                   blocksize=CHUNK)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout,
                                                  blocksize=CHUNK)
            self._local.conn = conn
        return conn

    def forget_connections(self) -> None:
        """In a process forked from the one that used this client: open connections of
        its own (the parent's sockets are shared with it and must not be used by two)."""
        self._local = threading.local()

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unreachable(self, exc: BaseException) -> ServerUnreachable:
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = f"its TLS certificate is not trusted ({exc.verify_message})"
        elif isinstance(exc, socket.timeout | TimeoutError):
            reason = f"no answer within {self.timeout:g} s"
        else:
            reason = str(exc) or type(exc).__name__
        return ServerUnreachable(f"team server {self.url} did not answer: {reason}; check the "
                                 "URL and that `mlops server start` runs there")

    def _send(self, method: str, route: str, body: Any, headers: dict[str, str],
              rewind: Callable[[], None] | None) -> http.client.HTTPResponse:
        """Send one request; a kept-alive connection the server closed meanwhile is
        reopened once (every request of this API is idempotent)."""
        headers = {"Authorization": f"Bearer {self.token}", "X-Mlops-Api": str(API_VERSION),
                   "User-Agent": USER_AGENT, **headers}
        path = self._base + route
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                self.close()
                if attempt == 2 or (body is not None and rewind is None):
                    raise self._unreachable(exc) from None
                if rewind is not None:
                    rewind()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise self._unreachable(exc) from None
        raise AssertionError("unreachable")

    def _fail(self, response: http.client.HTTPResponse) -> MlopsError:
        """The exception an error answer means; the connection is left reusable."""
        try:
            raw = response.read(MAX_ERROR_BODY + 1)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return self._unreachable(exc)
        if len(raw) > MAX_ERROR_BODY:
            self.close()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        applied = error.get("applied_seq") if isinstance(error, dict) else None
        if response.status == 409 and isinstance(applied, int):
            exc: MlopsError = SequenceGap(str(error.get("message")), applied)
        else:
            exc = error_from(response.status, body)
        exc.status = response.status  # type: ignore[attr-defined]
        return exc

    # -- calls -----------------------------------------------------------------------

    def call(self, method: str, route: str, payload: object = None) -> Any:
        """Send `payload` as JSON (None: no body) and return the decoded JSON answer."""
        body = None if payload is None else json.dumps(payload, allow_nan=False).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        response = self._send(method, route, body, headers, rewind=lambda: None)
        if response.status >= 400:
            raise self._fail(response)
        try:
            raw = response.read(MAX_JSON_ANSWER)
            return json.loads(raw)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self._unreachable(exc) from None
        except ValueError:
            raise MlopsError(f"team server {self.url} answered {route} with something that "
                             "is not JSON; is the URL a jupyter-mlops server?") from None

    def version(self) -> dict[str, Any]:
        """The server's versions; raises `VersionMismatch` when it needs a newer client."""
        answer = self.call("GET", "/version")
        if not isinstance(answer, dict) or not isinstance(answer.get("api"), int):
            raise MlopsError(f"{self.url} does not answer like a jupyter-mlops team server "
                             f"(GET {API_PREFIX}/version gave {str(answer)[:80]})")
        needed = answer.get("min_client_api", answer["api"])
        if isinstance(needed, int) and needed > API_VERSION:
            raise VersionMismatch(f"team server {self.url} (version {answer.get('server')}) "
                                  f"needs a client speaking API {needed}, this jupyter-mlops "
                                  f"speaks {API_VERSION}: upgrade jupyter-mlops")
        return answer

    def whoami(self) -> dict[str, Any]:
        answer = self.call("GET", "/whoami")
        if not isinstance(answer, dict) or not isinstance(answer.get("user"), str):
            raise MlopsError(f"team server {self.url} answered whoami with {str(answer)[:80]}")
        return answer

    def send_records(self, stream: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        """POST one batch of a stream; the server's `{"run_id", "applied_seq", "models"}`."""
        answer = self.call("POST", "/records", {"stream": stream, "records": records})
        if not isinstance(answer, dict) or not isinstance(answer.get("applied_seq"), int):
            raise MlopsError(f"team server {self.url} answered a batch with "
                             f"{str(answer)[:80]}")
        return answer

    def missing(self, digests: list[str]) -> set[str]:
        """Which of `digests` the server does not hold."""
        if not digests:
            return set()
        answer = self.call("POST", "/blobs/missing", {"digests": sorted(set(digests))})
        missing = answer.get("missing") if isinstance(answer, dict) else None
        if not isinstance(missing, list):
            raise MlopsError(f"team server {self.url} answered blobs/missing with "
                             f"{str(answer)[:80]}")
        return set(missing)

    def put_blob(self, digest: str, source: IO[bytes], size: int) -> None:
        """Stream `size` bytes of `source` (from its current position) as blob `digest`.

        The bytes are hashed as they are sent: if they are not `digest` (the file
        changed since it was hashed) `IntegrityError` is raised (the server, which
        hashes too, refuses them and keeps nothing).
        """
        start = source.tell()
        reader = _HashingReader(source, size)

        def rewind() -> None:
            source.seek(start)
            reader.reset()

        response = self._send("PUT", f"/blobs/{digest}", reader,
                              {"Content-Type": "application/octet-stream",
                               "Content-Length": str(size)}, rewind)
        if reader.size == size and reader.digest() != digest:
            response.read()
            raise IntegrityError("a file being uploaded (it changed while it was sent)",
                                 digest, reader.digest())
        if response.status >= 400:
            raise self._fail(response)
        response.read()

    def get_blob(self, digest: str, out: IO[bytes]) -> int:
        """Stream blob `digest` into `out`; returns its size. Raises `IntegrityError` when
        the bytes received are not `digest` (the caller discards `out`)."""
        response = self._send("GET", f"/blobs/{digest}", None, {}, rewind=lambda: None)
        if response.status >= 400:
            raise self._fail(response)
        hasher = blake3.blake3()
        size = 0
        try:
            while chunk := response.read(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self._unreachable(exc) from None
        actual = format_digest(hasher.hexdigest())
        if actual != digest:
            raise IntegrityError(f"blob {digest} downloaded from {self.url}", digest, actual)
        return size


class _HashingReader:
    """A file object for http.client that hashes what it hands out, `size` bytes at most."""

    def __init__(self, source: IO[bytes], size: int) -> None:
        self.source = source
        self.limit = size
        self.reset()

    def reset(self) -> None:
        self.hasher = blake3.blake3()
        self.size = 0

    def read(self, n: int = CHUNK) -> bytes:
        n = min(n if n > 0 else CHUNK, self.limit - self.size)
        chunk = self.source.read(n) if n > 0 else b""
        self.hasher.update(chunk)
        self.size += len(chunk)
        return chunk

    def digest(self) -> str:
        return format_digest(self.hasher.hexdigest())
