"""What `mlops login`, `logout`, `status` and `sync` do, as functions the CLI calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import check_server_url
from ..errors import MlopsError
from ..project import Project
from . import credentials
from .client import Client, retryable
from .queue import upload_staged
from .spool import Batch, DrainReport, Spool


def login(url: str, token: str, *, allow_insecure: bool = False) -> tuple[str, dict[str, Any]]:
    """Check `token` against `url` (version handshake, whoami), then store it.

    Returns the normalized URL and the server's whoami answer. Nothing is
    stored unless the server accepted the token. Raises `InvalidInput` (a bad
    URL or token), `ServerUnreachable`, `AuthenticationFailed`,
    `VersionMismatch`.
    """
    url = check_server_url(url, allow_insecure=allow_insecure)
    token = credentials.check_token(token)
    client = Client(url, token, timeout=30)
    try:
        client.version()
        who = client.whoami()
    finally:
        client.close()
    credentials.store_token(url, token)
    return url, who


def logout(url: str | None) -> list[str]:
    """Forget the token of `url` (None: every server's); the URLs forgotten."""
    if url is not None:
        url = check_server_url(url, allow_insecure=True)  # any URL once stored may go
    return credentials.forget(url)


def client_for(project: Project, environ: Mapping[str, str] | None = None) -> Client:
    """A client for the project's team server; raises `MlopsError` when it names none."""
    url = project.server_url(environ)
    if url is None:
        raise MlopsError(f"project {project.root} records into its own store: set [store] url "
                         "in .mlops/config.toml (or MLOPS_URL) to use a team server")
    return Client(url, credentials.token_for(url, environ))


@dataclass
class Status:
    """A project's team mode: the server, who the token is, what waits in the spool."""

    url: str
    who: dict[str, Any] | None  # None when the server did not answer
    problem: str | None  # why `who` is None
    pending: dict[str, tuple[int | None, int]] = field(default_factory=dict)
    rejected: int = 0
    rejected_path: str = ""
    staged_blobs: int = 0


def status(project: Project) -> Status:
    """The team server of `project`, whoami (or why not), and pending records per run."""
    client = client_for(project)
    spool = Spool.for_project(project)
    try:
        who, problem = client.whoami(), None
    except MlopsError as exc:
        who, problem = None, str(exc)
    finally:
        client.close()
    staged = sum(1 for _ in spool.blobs.iterdir()) if spool.blobs.is_dir() else 0
    return Status(url=client.url, who=who, problem=problem,
                  pending=spool.pending_by_stream(), rejected=spool.rejected_count(),
                  rejected_path=str(spool.rejected_path), staged_blobs=staged)


def sync(project: Project) -> DrainReport:
    """Send the spool to the team server, in order; what it sent, set aside and left.

    Raises `ServerUnreachable` (nothing sent; the spool is kept) and the
    server's error for a refused token.
    """
    client = client_for(project)
    spool = Spool.for_project(project)

    def send(batch: Batch) -> None:
        upload_staged(client, spool, batch.records)
        client.send_records(batch.stream, batch.records)

    try:
        report = spool.drain(send, retryable)
    finally:
        client.close()
    if report.stopped_by is not None and not report.sent:
        raise report.stopped_by
    return report
