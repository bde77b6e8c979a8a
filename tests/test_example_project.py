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
