"""Issue 9, point 9: everything under .mlops/ is private (folders 0700, files 0600,
blobs 0400), or group-shared with `[store] group_shared = true` (2770, 0660, 0440).

The tests run with umask 000, so any file whose mode came from the umask instead
of being set explicitly shows up as world-writable.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.pipelines.runner import PipelineRunner
from jupyter_mlops.pipelines.spec import load_spec
from jupyter_mlops.project import Project, find_project
from jupyter_mlops.store import Store
from jupyter_mlops.tracking import Tracker

from ..conftest import NOTEBOOKS


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def make_project(root: Path, shared: bool) -> Project:
    project = mlops.init(root)
    if shared:
        config = project.home / "config.toml"
        config.write_text(config.read_text().replace("# group_shared = false",
                                                     "group_shared = true"))
        project = mlops.init(root)  # running init again applies the configured modes
        assert project.store.group_shared
    return project


def record_everything(project: Project) -> list[tuple[str, int]]:
    """A run with a dataset, artifacts (a folder), a model and predictions; returns the
    modes seen while the store is open (so that -wal and -shm exist)."""
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    data = project.root / "train.csv"
    frame.to_csv(data, index=False)
    (project.root / "plots").mkdir()
    (project.root / "plots" / "roc.txt").write_text("curve")
    tracker = Tracker(project)
    try:
        run = tracker.start_run("modes")
        run.log_dataset(data)
        run.log_artifact(project.root / "plots")
        model = LogisticRegression().fit(frame[["x"]], frame["y"])
        version = run.log_model(model, "m", input_example=frame[["x"]])
        run.log_predictions(f"m:{version.version}", frame[["x"]], model.predict(frame[["x"]]))
        run.log_metric("acc", 1.0)
        seen = modes_under(project.home)
        run.end()
    finally:
        tracker.close()
    return seen


def run_pipeline_step(project: Project) -> None:
    shutil.copy(NOTEBOOKS / "pipeline" / "make.ipynb", project.root / "make.ipynb")
    spec = project.root / "one.yaml"
    spec.write_text("name: one\nsteps:\n  make:\n    notebook: make.ipynb\n"
                    "    params: {out: out/numbers.txt}\n    outputs: [out/numbers.txt]\n")
    with Store(project.db_path) as store:
        outcome = PipelineRunner(load_spec(spec, project.root), project, store).run()
    assert outcome.ok, {s: o.error for s, o in outcome.steps.items()}


def modes_under(home: Path) -> list[tuple[str, int]]:
    found = [(".", stat.S_IMODE(os.lstat(home).st_mode))]
    for folder, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(folder) / name
            found.append((path.relative_to(home).as_posix(), os.lstat(path).st_mode))
    return found


def expected_mode(relative: str, mode: int, shared: bool) -> int:
    if stat.S_ISDIR(mode):
        return 0o2770 if shared else 0o700
    if relative.startswith("artifacts/blake3/"):
        return 0o440 if shared else 0o400
    if relative == "audit.key":  # group members sign rows too; nobody else reads it
        return 0o640 if shared else 0o600
    return 0o660 if shared else 0o600


@pytest.mark.parametrize("shared", [False, True], ids=["private", "group_shared"])
def test_everything_under_mlops_has_the_configured_mode(tmp_path: Path, monkeypatch,
                                                        open_umask: None, shared: bool) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    project = make_project(tmp_path, shared)
    seen = record_everything(project)
    run_pipeline_step(find_project(tmp_path))
    seen += modes_under(project.home)
    names = {relative for relative, _ in seen}
    for expected in ("mlops.db", "mlops.db-wal", "mlops.db-shm", "cache/stat-cache.db",
                     "artifacts/tmp", "config.toml"):
        assert expected in names, f"{expected} was not created by the scenario"
    assert any(n.startswith("predictions/m/") and n.endswith(".parquet") for n in names)
    assert any(n.startswith("cache/pipelines/") and n.endswith("/outbox") for n in names)
    wrong = [(relative, oct(stat.S_IMODE(mode)), oct(expected_mode(relative, mode, shared)))
             for relative, mode in seen
             if relative != "." and stat.S_IMODE(mode) != expected_mode(relative, mode, shared)]
    assert wrong == []
    assert stat.S_IMODE(os.stat(project.home).st_mode) == (0o2770 if shared else 0o700)


def test_init_again_tightens_an_older_world_readable_project(tmp_path: Path,
                                                             open_umask: None) -> None:
    project = mlops.init(tmp_path)
    for path in (project.home, project.artifacts_dir, project.cache_dir):
        os.chmod(path, 0o755)
    os.chmod(project.db_path, 0o644)
    mlops.init(tmp_path)
    assert stat.S_IMODE(os.stat(project.home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(project.artifacts_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(project.db_path).st_mode) == 0o600
