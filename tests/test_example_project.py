"""The example project end to end, as the README's first command runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from jupyter_mlops.project import Project

REPO = Path(__file__).parent.parent


def test_example_pipeline_runs_then_is_fully_cached(project: Project, tracker) -> None:
    for folder in ("data", "notebooks", "pipelines"):
        shutil.copytree(REPO / folder, project.root / folder,
                        ignore=shutil.ignore_patterns("*.parquet", "outputs"))

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline", "run",
                               "pipelines/train.yaml"], capture_output=True, text=True,
                              timeout=600, cwd=project.root)

    first = run()
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("finished") == 4  # three steps and the pipeline
    evaluate = [r for r in tracker.search_runs("tags.`mlops.step` = 'evaluate'")][0]
    assert evaluate.metrics["accuracy"] > 0.9 and 0 <= evaluate.metrics["brier"] < 0.1
    assert evaluate.params["model"] == "models/classifier.skops"
    version = tracker.get_model_version("breast-cancer:1")
    train = tracker.get_run(version.run_id)
    assert train.tags["mlops.step"] == "train" and version.input_datasets
    assert tracker.load_model("breast-cancer:1").predict_proba is not None
    second = run()
    assert second.returncode == 0, second.stderr
    statuses = [line.split()[1] for line in second.stdout.splitlines()[2:5]]
    assert statuses == ["cached", "cached", "cached"]


def test_example_scoring_follows_production_and_logs_predictions(project, tracker) -> None:
    from jupyter_mlops.project import find_project
    from jupyter_mlops.registry.identity import identity_for
    from jupyter_mlops.registry.releases import Registry
    from jupyter_mlops.store import Store

    for folder in ("data", "notebooks", "pipelines"):
        shutil.copytree(REPO / folder, project.root / folder,
                        ignore=shutil.ignore_patterns("*.parquet", "outputs"))

    def mlops_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                              capture_output=True, text=True, timeout=600, cwd=project.root)

    assert mlops_cli("pipeline", "run", "pipelines/train.yaml").returncode == 0
    unset = mlops_cli("pipeline", "run", "pipelines/score.yaml")
    assert unset.returncode == 1 and "has no alias 'production'" in unset.stderr
    (project.home / "config.toml").write_text("[users.alice]\nroles = ['reviewer']\n")
    fresh = find_project(project.root)
    with Store(fresh.db_path) as store:
        registry = Registry(fresh, store)
        request = registry.request_release("breast-cancer:1", "production",
                                           identity_for("bob", fresh), "first model")
        registry.approve(request.id, identity_for("alice", fresh), "checked")
    scored = mlops_cli("pipeline", "run", "pipelines/score.yaml")
    assert scored.returncode == 0, scored.stderr
    [run] = tracker.search_runs("tags.`mlops.step` = 'score'")
    assert '"ref": "breast-cancer:1"' in run.params["model"]
    inputs = [d for d in tracker.store.datasets.for_run(run.id) if d.role == "input"]
    assert inputs and inputs[0].dataset.rows == 143
    report = mlops_cli("monitor", "report", "breast-cancer", "--json")
    assert report.returncode == 0
    assert '"rows": 143' in report.stdout
    again = mlops_cli("pipeline", "run", "pipelines/score.yaml")
    assert again.returncode == 0 and "cached" in again.stdout
