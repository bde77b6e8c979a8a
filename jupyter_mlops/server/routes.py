"""REST routes under /jupyter-mlops/api: thin adapters over the core API.

Every handler is an `APIHandler` (JSON errors, XSRF checks on writes) whose
methods are `@tornado.web.authenticated` and `@authorized` on the `mlops`
resource. Bad input is a 400 with {"message": ...}, a missing thing a 404,
never a 500.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ..artifacts import ArtifactStore
from ..errors import IntegrityError, InvalidInput, MlopsError, NotFound
from ..inspection import compare_runs, describe_run
from ..project import Project, find_project
from ..store import Store
from ..views import to_jsonable

MAX_PAGE = 500
MAX_COMPARE = 10


class MlopsHandler(APIHandler):
    """Base: opens the project's store per request and maps errors to JSON."""

    auth_resource = "mlops"

    def initialize(self, root_dir: str) -> None:
        self.root_dir = root_dir

    def project(self) -> Project:
        return find_project(self.root_dir)

    def open_store(self) -> Store:
        project = self.project()
        return Store(project.db_path, stale_after_seconds=project.tracking.stale_after_seconds)

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"message": message}))

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

    def run_safely(self, work) -> None:  # noqa: ANN001
        try:
            self.respond(work())
        except NotFound as exc:
            self.fail(404, str(exc))
        except IntegrityError as exc:
            self.fail(409, str(exc))
        except MlopsError as exc:
            self.fail(400, str(exc))


class RunsHandler(MlopsHandler):
    """GET runs?filter=&limit=50&offset=0&notebook=PATH -> {runs, has_more, ...}."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        def work() -> dict[str, Any]:
            limit = self.int_argument("limit", 50, 1, MAX_PAGE)
            offset = self.int_argument("offset", 0, 0, 10**9)
            expression = self.get_query_argument("filter", "").strip()[:2000]
            notebook = self.get_query_argument("notebook", "").strip()
            if notebook:
                if any(ord(c) < 32 for c in notebook) or len(notebook) > 1000:
                    raise InvalidInput("notebook must be a path relative to the server root")
                path = Path(self.root_dir, notebook).resolve()
                quoted = json.dumps(str(path), ensure_ascii=False)  # a quoted filter string
                clause = f"notebook = {quoted}"
                expression = f"({expression}) and {clause}" if expression else clause
            with self.open_store() as store:
                runs = store.runs.search(expression or None, limit=limit + 1, offset=offset)
            return {"runs": runs[:limit], "has_more": len(runs) > limit, "limit": limit,
                    "offset": offset}

        self.run_safely(work)


class RunHandler(MlopsHandler):
    """GET runs/ID -> everything recorded about the run."""

    @tornado.web.authenticated
    @authorized
    def get(self, run_id: str) -> None:
        def work():  # noqa: ANN202
            with self.open_store() as store:
                return describe_run(store, int(run_id))

        self.run_safely(work)


class CompareHandler(MlopsHandler):
    """GET compare?runs=1,2,3 -> rows of params, metrics, data, environment, code."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        def work():  # noqa: ANN202
            raw = self.get_query_argument("runs", "")
            parts = [p for p in raw.split(",") if p.strip()]
            if not 2 <= len(parts) <= MAX_COMPARE or not all(p.strip().isdigit() for p in parts):
                raise InvalidInput(f"runs must be 2 to {MAX_COMPARE} run ids separated by "
                                   f"commas, got {raw[:80]!r}")
            with self.open_store() as store:
                return compare_runs(store, [int(p) for p in parts])

        self.run_safely(work)


class ModelsHandler(MlopsHandler):
    """GET models -> names, versions, aliases, and the dashboard's address if configured."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
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

        self.run_safely(work)


class ArtifactHandler(MlopsHandler):
    """GET artifacts/RUN_ID/NAME -> the bytes, only for names linked to that run."""

    @tornado.web.authenticated
    @authorized
    def get(self, run_id: str, name: str) -> None:
        try:
            with self.open_store() as store:
                links = {a.name: a for a in store.artifacts.for_run(int(run_id))}
            link = links.get(name)
            if link is None:
                raise NotFound(f"run {run_id} has no artifact {name[:120]!r}")
            data = ArtifactStore(self.project().artifacts_dir).read_bytes(link.digest)
        except NotFound as exc:
            self.fail(404, str(exc))
            return
        except IntegrityError as exc:
            self.fail(409, str(exc))
            return
        except MlopsError as exc:
            self.fail(400, str(exc))
            return
        filename = name.rsplit("/", 1)[-1].replace('"', "")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(data)


ROUTES = [
    (r"runs", RunsHandler),
    (r"runs/(\d{1,12})", RunHandler),
    (r"compare", CompareHandler),
    (r"models", ModelsHandler),
    (r"artifacts/(\d{1,12})/(.+)", ArtifactHandler),
]


def setup_routes(web_app: Any, root_dir: str) -> None:
    base = url_path_join(web_app.settings["base_url"], "jupyter-mlops", "api")
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), handler,
                                  {"root_dir": root_dir}) for pattern, handler in ROUTES])
