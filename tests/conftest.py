from __future__ import annotations

import os
from pathlib import Path

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store
from jupyter_mlops.tracking import Tracker

NOTEBOOKS = Path(__file__).parent / "notebooks"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A fresh project in tmp_path, also the working directory and MLOPS_HOME."""
    created = mlops.init(tmp_path)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return created


@pytest.fixture
def tracker(project: Project):
    """A tracker on `project`, installed as the process's shared one."""
    fresh = Tracker(project)
    old = mlops.use_tracker(fresh)
    yield fresh
    run = fresh.active_run
    if run is not None and not run.ended:
        run.end("killed")
    fresh.close()
    mlops.use_tracker(old)


BACKENDS = ["sqlite", "postgresql"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_backends: the test's `store` (and "
                            "`store_with_runs`) runs once on SQLite, once on PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only(reason): the test is about SQLite "
                            "itself (files, PRAGMAs, processes opening the project's file)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_backends` that take a store run on each database (ids `sqlite`
    and `postgresql`), unless marked `sqlite_only`."""
    definition = metafunc.definition
    if (definition.get_closest_marker("both_backends") is not None
            and definition.get_closest_marker("sqlite_only") is None
            and {"store", "store_with_runs"} & set(metafunc.fixturenames)):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """`sqlite` (the default) or `postgresql`: the database behind `store`."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def postgres_cluster():
    """The session's throwaway PostgreSQL cluster (tests/postgres.py), stopped at the end.
    Skipped when PostgreSQL is not installed here; a failure when CI is set."""
    from tests.postgres import cluster, postgres_missing, stop_cluster

    problem = postgres_missing()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed in CI: {problem} (.ci/run installs it)")
        pytest.skip(f"PostgreSQL tests need a local PostgreSQL 15: {problem}")
    try:
        yield cluster()
    finally:
        stop_cluster()


@pytest.fixture
def pg_url(postgres_cluster) -> str:
    """The URL of a fresh, empty database on the session's cluster (not migrated)."""
    from tests.postgres import fresh_database_url

    return fresh_database_url()


@pytest.fixture
def store(project: Project, backend: str, request: pytest.FixtureRequest):
    """The project's migrated store: its SQLite file, or (backend `postgresql`) a fresh
    PostgreSQL database keyed with the project's audit key."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        with Store(url, audit_key_path=project.audit_key_path) as opened:
            opened.migrate()
            yield opened
        return
    with Store(project.db_path) as opened:
        yield opened


@pytest.fixture
def store_with_runs(tracker: Tracker, backend: str, request: pytest.FixtureRequest) -> Store:
    """Three finished runs: (C=0.1, acc=0.80), (C=0.5, acc=0.90), (C=1.0, acc=0.95, failed)."""
    if backend == "postgresql":  # the same runs, written through the store's API
        return _three_runs(request.getfixturevalue("store"))
    for index, (c, acc) in enumerate([(0.1, 0.80), (0.5, 0.90), (1.0, 0.95)]):
        run = tracker.start_run(f"run-{index}", tags={"team": "churn" if index else "risk"})
        run.log_params({"C": c, "solver": "lbfgs"})
        run.log_metric("acc", acc)
        run.end("failed" if index == 2 else "finished")
    return tracker.store


def _three_runs(store: Store) -> Store:
    import time
    import uuid

    from jupyter_mlops.store.runs import NewRun

    for index, (c, acc) in enumerate([(0.1, 0.80), (0.5, 0.90), (1.0, 0.95)]):
        run_id = store.runs.create(NewRun(uuid=uuid.uuid4().hex, name=f"run-{index}",
                                          started_at=time.time(), source_kind="notebook",
                                          notebook="train.ipynb"))
        store.runs.set_tags(run_id, {"team": "churn" if index else "risk"})
        store.runs.log_params(run_id, {"C": str(c), "solver": "lbfgs"})
        store.runs.log_metrics(run_id, [("acc", acc, None, time.time())])
        store.runs.end(run_id, "failed" if index == 2 else "finished")
    return store


@pytest.fixture
def ipython(tracker: Tracker):
    """A real IPython shell with the extension loaded, recording into `tracker`."""
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "jupyter_mlops")
    magics = shell.magics_manager.registry["MlopsMagics"]
    magics.tracker = tracker
    tracker.history = magics._history
    yield shell
    shell.run_line_magic("unload_ext", "jupyter_mlops")


@pytest.fixture
def shown(ipython, monkeypatch) -> list[tuple[str, str | None]]:
    """What the magics display, as (text, html) pairs."""
    magics = ipython.magics_manager.registry["MlopsMagics"]
    captured: list[tuple[str, str | None]] = []
    monkeypatch.setattr(magics, "show", lambda text, html=None: captured.append((text, html)))
    return captured




@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run must install Debian's chromium")
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox"])
        yield launched
        launched.close()
