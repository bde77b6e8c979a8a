"""`RemoteStore`: the store's read side, answered by the team server.

In team mode the CLI, the magics and the lab panel read runs, models, releases
and the audit log through an object shaped like `Store`: `store.runs.search(...)`
and `store.models.resolve("churn@production")` work unchanged. Each read goes
to POST /api/v1/read, where the server runs the same repository method on its
database (`teamserver.reads`). Writes are not reachable this way: a client
records through `RemoteRecorder`, and governs through the server's own routes,
where the server decides who is acting. Calling a write method here raises
`PermissionDenied` naming what to use instead.
"""

from __future__ import annotations

from typing import Any

from ..errors import MlopsError, PermissionDenied
from ..project import Project
from ..store import codec, shapes
from ..team_protocol import READ_CALLS
from .client import Client


class RemoteRepository:
    """One repository's read methods, each a call to the server."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self._name = name

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        if method not in READ_CALLS[self._name]:
            raise PermissionDenied(
                f"store.{self._name}.{method} writes, and in team mode only the server "
                f"writes its database ({self._client.url}): record through a run (the "
                "magics, the Python API) and govern with `mlops release` / `mlops models`")

        def call(*args: Any, **kwargs: Any) -> Any:
            answer = self._client.call("POST", "/read", {
                "call": f"{self._name}.{method}", "args": codec.encode(list(args)),
                "kwargs": codec.encode(kwargs)})
            if not isinstance(answer, dict) or "result" not in answer:
                raise MlopsError(f"team server {self._client.url} answered "
                                 f"{self._name}.{method} with {str(answer)[:80]}")
            result = codec.decode(answer["result"])
            expected = shapes.read_hints(self._name, method).get("return", Any)
            if not shapes.fits(result, expected):
                raise MlopsError(f"team server {self._client.url} answered "
                                 f"{self._name}.{method} with {shapes.described(result)} "
                                 f"where {shapes.spoken(expected)} belongs; is it a "
                                 "jupyter-mlops server of this version?")
            return result

        call.__name__ = method
        return call


class RemotePipelines(RemoteRepository):
    """`store.pipelines`: its reads (the step cache) as any repository's, and the writes
    a pipeline runner makes (`team_protocol.PIPELINE_CALLS`) through POST
    /api/v1/pipelines, with the signatures of `store.pipelines.PipelineRepository`."""

    def _write(self, call: str, **args: Any) -> Any:
        answer = self._client.call("POST", "/pipelines", {"call": call,
                                                          "args": codec.encode(args)})
        if not isinstance(answer, dict) or "result" not in answer:
            raise MlopsError(f"team server {self._client.url} answered pipelines.{call} "
                             f"with {str(answer)[:80]}")
        return codec.decode(answer["result"])

    def start(self, name: str, spec_path: str, spec_digest: str, trigger: str,
              steps: list[str]) -> int:
        return self._write("start", name=name, spec_path=spec_path, spec_digest=spec_digest,
                           trigger=trigger, steps=list(steps))

    def heartbeat(self, pipeline_run_id: int) -> None:
        self._write("heartbeat", pipeline_run_id=pipeline_run_id)

    def update_step(self, pipeline_run_id: int, step: str, **fields: Any) -> None:
        self._write("update_step", pipeline_run_id=pipeline_run_id, step=step, **fields)

    def finish(self, pipeline_run_id: int, status: str, error: str | None = None) -> None:
        self._write("finish", pipeline_run_id=pipeline_run_id, status=status, error=error)

    def set_run_tags(self, run_id: int, tags: dict[str, str]) -> None:
        """The runner's own tags (`team_protocol.RUNNER_TAGS`) on a step's run."""
        self._write("set_run_tags", run_id=run_id, tags=dict(tags))


class NotInTeamMode(MlopsError, AttributeError):
    """A part of the embedded store (its file, migrations, transactions, the gc's
    listings) that a team-mode client doesn't have: the server owns its database."""


class RemoteStore:
    """A `Store` whose reads the team server answers; `close()` ends the connection.

    Anything else a caller asks of it (`path`, `migrate`, `transaction`, a repository
    that only writes) raises `NotInTeamMode`, one line saying so, never a traceback.
    """

    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client
        for name in READ_CALLS:
            setattr(self, name, RemoteRepository(client, name))
        self.pipelines = RemotePipelines(client, "pipelines")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotInTeamMode(
            f"this project records into the team server {self.client.url}, which owns the "
            f"database: the store's {name!r} is the server admin's (on the server: `mlops "
            "server ...`); runs are recorded through the magics and the Python API")

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remote_store_for(project: Project, *, timeout: float = 60.0) -> RemoteStore | None:
    """The team server's store when `project` is in team mode (`[store] url` in its
    config, or `MLOPS_URL`), else None: the caller opens the project's own store.

    Raises `AuthenticationFailed` when no token is known for the server (nothing
    in `MLOPS_TOKEN`, no `mlops login`), `InvalidInput` for a malformed one.
    """
    url = project.server_url()
    if url is None:
        return None
    from .credentials import token_for

    return RemoteStore(Client(url, token_for(url), timeout=timeout))
