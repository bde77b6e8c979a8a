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


@pytest.fixture
def store(project: Project):
    with Store(project.db_path) as opened:
        yield opened


@pytest.fixture
def store_with_runs(tracker: Tracker) -> Store:
    """Three finished runs: (C=0.1, acc=0.80), (C=0.5, acc=0.90), (C=1.0, acc=0.95, failed)."""
    for index, (c, acc) in enumerate([(0.1, 0.80), (0.5, 0.90), (1.0, 0.95)]):
        run = tracker.start_run(f"run-{index}", tags={"team": "churn" if index else "risk"})
        run.log_params({"C": c, "solver": "lbfgs"})
        run.log_metric("acc", acc)
        run.end("failed" if index == 2 else "finished")
    return tracker.store


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
