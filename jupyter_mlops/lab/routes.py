"""REST routes under /jupyter-mlops/api: thin adapters over the core API.

Every handler is an `APIHandler` (JSON errors, XSRF checks on writes) whose
methods are `@tornado.web.authenticated` and `@authorized` on the `mlops`
resource. Bad input is a 400 with {"message": ...}, a missing thing a 404,
corrupted stored bytes a 409, never a 500; no message carries an absolute
server path (`messages.without_server_paths`). Artifacts are downloads
(`http_headers.download_headers`): an attachment, never sniffed, sandboxed.

In a team-mode project (`[store] url` in .mlops/config.toml, or `MLOPS_URL`) the
same routes read the team server through `RemoteStore`, with the token of the
account running Jupyter; the server's refusals come back as the same JSON
errors: 503 when it does not answer, 401 for a wrong, revoked or expired token,
403 for a missing role. The store is read in a worker thread, so a slow server
never stalls the Jupyter server's event loop.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import tornado.ioloop
import tornado.iostream
import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ..artifacts import ArtifactStore
from ..errors import IntegrityError, InvalidInput, MlopsError, NotFound
from ..http_headers import download_headers
from ..inspection import compare_runs, describe_run
from ..project import Project, find_project
from ..remote.store import remote_store_for
from ..reproduce.diff import blob_reader, diff_runs
from ..store import Store
from ..views import to_jsonable
from .messages import status_for, without_server_paths

MAX_PAGE = 500
MAX_COMPARE = 10
MAX_DIFF_LINES = 5000  # of the code diff sent to the panel; the CLI prints it all
TEAM_TIMEOUT = 30.0  # seconds a read waits for the team server before saying it is down
CHUNK = 1 << 20
SPOOL_IN_MEMORY = 8 << 20  # a downloaded artifact up to this size stays in memory
RUN_ID = re.compile(r"[0-9]{1,12}")  # ASCII digits only: "²".isdigit() is true, int() fails


class MlopsHandler(APIHandler):
    """Base: opens the project's store per request and maps errors to JSON."""

    auth_resource = "mlops"

    def initialize(self, root_dir: str) -> None:
        self.root_dir = root_dir

    def project(self) -> Project:
        return find_project(self.root_dir)

    def open_store(self) -> Store:
        """The project's store, or in team mode the server's (`RemoteStore`)."""
        project = self.project()
        remote = remote_store_for(project, timeout=TEAM_TIMEOUT)
        if remote is not None:
            return remote  # type: ignore[return-value]
        return Store.for_project(project)

    def fail(self, status: int, message: str) -> None:
        """Answer `status` with {"message": ...}, absolute server paths taken out."""
        self.set_status(status)
        self.finish(json.dumps({"message": without_server_paths(message, self.root_dir)}))

    def fail_with(self, error: MlopsError) -> None:
        self.fail(status_for(error), str(error))

    def respond(self, payload: Any) -> None:
        self.finish(json.dumps(to_jsonable(payload)))

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_query_argument(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInput(f"{name} must be a whole number, got {raw[:40]!r}") from None
        if not low <= value <= high:
            raise InvalidInput(f"{name} must be between {low} and {high}, got {value}")
        return value

    async def in_thread(self, work: Callable[[], Any]) -> Any:
        """`work()` in a worker thread: a store read (over the network, in team mode)
        must not hold up the Jupyter server's event loop."""
        return await tornado.ioloop.IOLoop.current().run_in_executor(None, work)

    async def run_safely(self, work: Callable[[], Any]) -> None:
        """Respond with `work()`, or map its `MlopsError` to a JSON 4xx/503 (`status_for`)."""
        try:
            result = await self.in_thread(work)
        except MlopsError as exc:
            self.fail_with(exc)
            return
        self.respond(result)


class RunsHandler(MlopsHandler):
    """GET runs?filter=&limit=50&offset=0&notebook=PATH -> {runs, has_more, ...}."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        def work() -> dict[str, Any]:
            limit = self.int_argument("limit", 50, 1, MAX_PAGE)
            offset = self.int_argument("offset", 0, 0, 10**9)
            expression = self.get_query_argument("filter", "").strip()
            notebook = self.get_query_argument("notebook", "").strip()
            path = None
            if notebook:
                if any(ord(c) < 32 for c in notebook) or len(notebook) > 1000:
                    raise InvalidInput("notebook must be a path relative to the server root")
                path = str(Path(self.root_dir, notebook).resolve())
            with self.open_store() as store:
                runs = store.runs.search(expression or None, limit=limit + 1, offset=offset,
                                         notebook=path)
            return {"runs": runs[:limit], "has_more": len(runs) > limit, "limit": limit,
                    "offset": offset}

        await self.run_safely(work)


class RunHandler(MlopsHandler):
    """GET runs/ID -> everything recorded about the run."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        def work():  # noqa: ANN202
            with self.open_store() as store:
                return describe_run(store, int(run_id))

        await self.run_safely(work)


class CompareHandler(MlopsHandler):
    """GET compare?runs=1,2,3 -> rows of params, metrics, data, environment, code."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        def work():  # noqa: ANN202
            raw = self.get_query_argument("runs", "")
            parts = [p.strip() for p in raw.split(",") if p.strip()]
            if not 2 <= len(parts) <= MAX_COMPARE or not all(RUN_ID.fullmatch(p) for p in parts):
                raise InvalidInput(f"runs must be 2 to {MAX_COMPARE} run ids separated by "
                                   f"commas, got {raw[:80]!r}")
            with self.open_store() as store:
                return compare_runs(store, [int(p) for p in parts])

        await self.run_safely(work)


class DiffHandler(MlopsHandler):
    """GET runs/diff?a=1&b=2 -> why two runs differ (`mlops runs diff`): changed datasets
    with their rows and schema, the differing rows, and the unified diff of their code
    from the stored snapshots (at most MAX_DIFF_LINES lines; `code_diff_omitted` says
    how many more)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        def work() -> dict[str, Any]:
            ids = []
            for name in ("a", "b"):
                raw = self.get_query_argument(name, "")
                if not RUN_ID.fullmatch(raw):
                    raise InvalidInput(f"{name} must be a run id (up to 12 digits), "
                                       f"got {raw[:40]!r}")
                ids.append(int(raw))
            project = self.project()
            with self.open_store() as store:
                found = diff_runs(store, blob_reader(project, store), *ids)
            payload = to_jsonable(found)
            payload["code_diff"] = payload["code_diff"][:MAX_DIFF_LINES]
            payload["code_diff_omitted"] = max(0, len(found.code_diff) - MAX_DIFF_LINES)
            return payload

        await self.run_safely(work)


class DatasetsHandler(MlopsHandler):
    """GET datasets?limit=50&offset=0 -> dataset versions newest first, each with its
    digest, kind, size, rows, schema and the runs that read or wrote it."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        def work() -> dict[str, Any]:
            limit = self.int_argument("limit", 50, 1, MAX_PAGE)
            offset = self.int_argument("offset", 0, 0, 10**9)
            with self.open_store() as store:
                versions = store.datasets.recent(limit + 1, offset)
                uses = store.datasets.uses([v.digest for v in versions[:limit]])
            runs: dict[str, list[dict[str, Any]]] = {}
            for digest, run_id, role, source in uses:
                runs.setdefault(digest, []).append(
                    {"run_id": run_id, "role": role, "source": source})
            return {"datasets": [{**to_jsonable(v), "runs": runs.get(v.digest, [])}
                                 for v in versions[:limit]],
                    "has_more": len(versions) > limit, "limit": limit, "offset": offset}

        await self.run_safely(work)


class PipelinesHandler(MlopsHandler):
    """GET pipelines?limit=10 -> recent pipeline runs, newest first, each step with its
    status (cached / finished / failed ...), duration, its run, the executed notebook as
    a path under the server root (to open in JupyterLab) and its HTML report's name."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        def work() -> dict[str, Any]:
            limit = self.int_argument("limit", 10, 1, 100)
            with self.open_store() as store:
                pipelines = store.pipelines.recent(limit=limit)
                reports = {step.run_id: [a.name for a in store.artifacts.for_run(step.run_id)
                                         if a.kind == "report"]
                           for p in pipelines for step in p.steps if step.run_id is not None}
            return {"pipelines": [self.pipeline_json(p, reports) for p in pipelines]}

        await self.run_safely(work)

    def pipeline_json(self, pipeline: Any, reports: dict[int, list[str]]) -> dict[str, Any]:
        steps = [{"step": s.step, "status": s.status, "run_id": s.run_id,
                  "cached_from": s.cached_from, "error": self.shown(s.error),
                  "duration": (None if s.started_at is None or s.ended_at is None
                               else s.ended_at - s.started_at),
                  "notebook": self.under_root(s.notebook_path),
                  "report": (reports.get(s.run_id) or [None])[0]} for s in pipeline.steps]
        return {"id": pipeline.id, "name": pipeline.name, "status": pipeline.status,
                "trigger": pipeline.trigger, "started_at": pipeline.started_at,
                "ended_at": pipeline.ended_at, "error": self.shown(pipeline.error),
                "steps": steps}

    def shown(self, message: str | None) -> str | None:
        return None if message is None else without_server_paths(message, self.root_dir)

    def under_root(self, path: str | None) -> str | None:
        """`path` relative to the server root, or None when JupyterLab cannot open it:
        outside the root, gone, or hidden (under .mlops/, which Jupyter's contents
        manager refuses by default; the step's HTML report is then the way in). No
        absolute server path leaves."""
        if not path:
            return None
        root = Path(self.root_dir).resolve()
        try:
            relative = Path(path).resolve().relative_to(root)
        except (ValueError, OSError):
            return None
        if any(part.startswith(".") for part in relative.parts):
            return None
        return relative.as_posix() if (root / relative).is_file() else None


class ModelsHandler(MlopsHandler):
    """GET models -> names, versions, aliases, and the dashboard's address if configured."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        def work() -> dict[str, Any]:
            with self.open_store() as store:
                models = []
                for name in store.models.names():
                    aliases = store.releases.aliases(name)
                    models.append({
                        "name": name,
                        "versions": [{"version": v.version, "run_id": v.run_id,
                                      "created_at": v.created_at,
                                      "aliases": sorted(a for (_, a), n in aliases.items()
                                                        if n == v.version)}
                                     for v in store.models.versions(name)[:100]]})
            return {"models": models, "dashboard_url": os.environ.get("MLOPS_DASHBOARD_URL")}

        await self.run_safely(work)


class ArtifactHandler(MlopsHandler):
    """GET artifacts/RUN_ID/NAME -> the bytes as a download, only for names linked to that run.

    A name holding quotes, newlines or any Unicode is encoded per RFC 6266; a
    blob whose bytes no longer match their digest is a 409, a missing one a 404.
    """

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str, name: str) -> None:
        try:
            data = await self.in_thread(lambda: self.artifact_file(int(run_id), name))
        except IntegrityError as exc:
            self.fail(409, f"{exc}; `mlops verify` lists every damaged artifact")
            return
        except MlopsError as exc:
            self.fail_with(exc)
            return
        for header, value in download_headers(name).items():
            self.set_header(header, value)
        self.set_header("Content-Type", "application/octet-stream")
        with data:
            try:
                while chunk := data.read(CHUNK):
                    self.write(chunk)
                    await self.flush()
            except tornado.iostream.StreamClosedError:
                return  # the browser went away: nothing more to send
        self.finish()

    def artifact_file(self, run_id: int, name: str) -> IO[bytes]:
        """The verified bytes of `name` in run `run_id`, as an open file positioned at
        its start; raises `NotFound` or `IntegrityError`. In team mode the blob is
        downloaded (and verified) whole before a byte of it is sent on."""
        with self.open_store() as store:
            link = next((a for a in store.artifacts.for_run(run_id) if a.name == name), None)
            if link is None:
                raise NotFound(f"run {run_id} has no artifact {name[:120]!r}")
            if getattr(store, "remote", False):
                return _downloaded(store, link.digest)
        shown = f"run {run_id}'s artifact {name[:120]!r}"
        try:
            return io.BytesIO(ArtifactStore(self.project().artifacts_dir).read_bytes(link.digest))
        except NotFound:
            raise NotFound(f"{shown} is missing from the artifact store ({link.digest}); "
                           "`mlops verify` lists every missing or damaged artifact") from None
        except IntegrityError as exc:
            raise IntegrityError(shown, exc.expected, exc.actual) from None
        except OSError as exc:  # e.g. a blob replaced by a link the store will not follow
            problem = exc.strerror or type(exc).__name__
            raise IntegrityError(shown, link.digest, f"unreadable bytes ({problem})") from None


def _downloaded(store: Any, digest: str) -> IO[bytes]:
    """Blob `digest` from the team server into a temporary file (in memory while small),
    its digest checked; the file is closed on any error."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    try:
        store.client.get_blob(digest, spool)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool  # type: ignore[return-value]


ROUTES = [
    (r"runs", RunsHandler),
    (r"runs/(\d{1,12})", RunHandler),
    (r"runs/diff", DiffHandler),
    (r"compare", CompareHandler),
    (r"models", ModelsHandler),
    (r"datasets", DatasetsHandler),
    (r"pipelines", PipelinesHandler),
    (r"artifacts/(\d{1,12})/(.+)", ArtifactHandler),
]


def setup_routes(web_app: Any, root_dir: str) -> None:
    base = url_path_join(web_app.settings["base_url"], "jupyter-mlops", "api")
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), handler,
                                  {"root_dir": root_dir}) for pattern, handler in ROUTES])
