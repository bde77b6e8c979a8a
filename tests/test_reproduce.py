"""`mlops reproduce RUN`: a recorded run re-executed from its record alone (its stored
snapshot, its recorded inputs by digest, its parameters) in a scratch folder, compared
with the original; verdict and exit code 0 reproduced, 1 differs, 2 could not run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jupyter_mlops as mlops
from jupyter_mlops import capture
from jupyter_mlops.project import find_project
from jupyter_mlops.store import Store

REPO = Path(__file__).parent.parent


def mlops_cli(root: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          capture_output=True, text=True, timeout=600, cwd=root,
                          env={**os.environ, "MLOPS_HOME": str(root), **(env or {})})


def runs_of(root: Path) -> list:
    with Store(find_project(root, environ={}).db_path) as store:
        return store.runs.search(limit=1000)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project after one run of its training pipeline (runs 1-3: prepare,
    train, evaluate; breast-cancer:1 made by train)."""
    root = tmp_path_factory.mktemp("example")
    mlops.init(root)
    for folder in ("data", "notebooks", "pipelines"):
        shutil.copytree(REPO / folder, root / folder,
                        ignore=shutil.ignore_patterns("*.parquet", "outputs"))
    ran = mlops_cli(root, "pipeline", "run", "pipelines/train.yaml")
    assert ran.returncode == 0, ran.stderr
    return root


@pytest.fixture
def copy_of(tmp_path: Path):
    """A copy of a project (store and artifacts included), to change files in."""
    def copy(root: Path) -> Path:
        target = tmp_path / "copy"
        shutil.copytree(root, target)
        return target
    return copy


def test_the_production_models_run_reproduces_and_touches_nothing(example: Path) -> None:
    model_file = example / "models" / "classifier.skops"
    before = model_file.stat().st_mtime_ns
    done = mlops_cli(example, "reproduce", "breast-cancer:1")
    assert done.returncode == 0, done.stdout + done.stderr
    first_line = done.stdout.splitlines()[0]
    assert first_line.startswith("reproduced: run 4 reproduces run 2 "
                                 "(breast-cancer-train/train)"), done.stdout
    assert "data/train.parquet: the project's file, unchanged" in done.stdout
    new = [r for r in runs_of(example) if r.id == 4][0]
    original = [r for r in runs_of(example) if r.id == 2][0]
    assert new.tags[capture.REPRODUCES_TAG] == original.uuid
    assert new.metrics == original.metrics and new.params == original.params
    with Store(find_project(example, environ={}).db_path) as store:
        assert [v.version for v in store.models.versions("breast-cancer")] == [1]  # no new one
        kept = {a.name: a.digest for a in store.artifacts.for_run(4)}
        assert kept["models/breast-cancer"] == store.models.get("breast-cancer", 1).digest
        assert "executed/train.ipynb" in kept
    assert model_file.stat().st_mtime_ns == before  # the project's files are never written
    assert not any((example / ".mlops" / "cache" / "reproduce").iterdir())  # scratch removed


def test_a_changed_input_is_named_with_both_digests(example: Path, copy_of) -> None:
    root = copy_of(example)
    raw = root / "data" / "breast_cancer.csv"
    with Store(find_project(root, environ={}).db_path) as store:
        [recorded] = [d.dataset.digest for d in store.datasets.for_run(1, role="input")]
    raw.write_text(raw.read_text().replace("\n1", "\n0", 1))
    before = len(runs_of(root))
    done = mlops_cli(root, "reproduce", "1")
    assert done.returncode == 2, done.stdout + done.stderr
    line = done.stdout.splitlines()[0]
    assert line.startswith("could not run: run 1 (breast-cancer-train/prepare): input "
                           "data/breast_cancer.csv changed: the run read " + recorded)
    assert ", now blake3:" in line and "--keep" in line
    assert len(runs_of(root)) == before  # nothing was executed

    raw.unlink()
    assert "changed: the run read " + recorded + ", missing" in \
        mlops_cli(root, "reproduce", "1").stdout


def test_a_changed_input_that_was_kept_is_restored(example: Path, copy_of) -> None:
    """A step's outputs are kept by the runner: train's input comes back from the store."""
    root = copy_of(example)
    (root / "data" / "train.parquet").write_bytes(b"not the training data")
    done = mlops_cli(root, "reproduce", "2", "--keep")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data/train.parquet: restored from the artifact store" in done.stdout
    scratch = Path(done.stdout.split("scratch folder kept: ")[1].strip())
    assert (scratch / "data" / "train.parquet").read_bytes()[:4] == b"PAR1"
    assert (scratch / "models" / "classifier.skops").is_file()  # the outputs are there
    assert (root / "data" / "train.parquet").read_bytes() == b"not the training data"


def test_keep_stores_a_files_bytes_and_reproduce_restores_them(project, tracker) -> None:
    data = project.root / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    script = project.root / "count.py"
    script.write_text(
        "import jupyter_mlops as mlops\n"
        "with mlops.start_run('count') as run:\n"
        "    run.log_dataset('data.csv', keep=True)\n"
        "    rows = len(open('data.csv').read().splitlines()) - 1\n"
        "    run.log_metric('rows', rows)\n")
    first = subprocess.run([sys.executable, str(script)], cwd=project.root, text=True,
                           capture_output=True, timeout=120)
    assert first.returncode == 0, first.stderr
    [run] = tracker.search_runs()
    kept = {a.name: a for a in tracker.store.artifacts.for_run(run.id)}
    assert kept["datasets/data.csv"].kind == "dataset"
    assert kept["source/count.py"].kind == "source"

    data.write_text("a,b\n1,2\n")  # the file changes after the run
    done = mlops_cli(project.root, "reproduce", str(run.id))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"reproduced: run {run.id + 1} reproduces run {run.id} "
                                  "(count)")
    assert "data.csv: restored from the artifact store" in done.stdout

    with pytest.raises(mlops.InvalidInput, match="write the table to a file"):
        with tracker.start_run("table") as again:
            again.log_dataset(__import__("pandas").DataFrame({"a": [1]}), keep=True)


def test_a_script_whose_metric_changes_differs_and_a_tolerance_accepts_it(project, tracker
                                                                          ) -> None:
    script = project.root / "noisy.py"
    script.write_text(
        "import random\nimport jupyter_mlops as mlops\n"
        "with mlops.start_run('noisy') as run:\n"
        "    run.log_metric('score', 0.9 + random.random() / 1000)\n"
        "    run.log_metric('fixed', 1.0)\n")
    assert subprocess.run([sys.executable, str(script)], cwd=project.root,
                          timeout=120).returncode == 0
    [run] = tracker.search_runs()
    done = mlops_cli(project.root, "reproduce", str(run.id))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (f"differs: run {run.id + 1} does not reproduce run {run.id} (noisy): "
                        "1 of 3 recorded values differ")  # 2 metrics, the code
    assert lines[1].startswith("  metric score: 0.9") and " reproduced" in lines[1]
    loose = mlops_cli(project.root, "reproduce", str(run.id), "--atol", "0.01", "--json")
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert json.loads(loose.stdout)["verdict"] == "reproduced"


def test_package_differences_are_listed_and_strict_env_refuses(project, tracker, tmp_path
                                                              ) -> None:
    extra = tmp_path / "extra-site"
    (extra / "left_pad-1.3.0.dist-info").mkdir(parents=True)  # a package only the run had
    script = project.root / "train.py"
    script.write_text("import jupyter_mlops as mlops\n"
                      "with mlops.start_run('train') as run:\n"
                      "    run.log_metric('acc', 0.5)\n")
    assert subprocess.run([sys.executable, str(script)], cwd=project.root, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(extra)}).returncode == 0
    [run] = tracker.search_runs()
    done = mlops_cli(project.root, "reproduce", str(run.id))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left-pad: 1.3.0 in the run's environment, missing here" in done.stdout
    strict = mlops_cli(project.root, "reproduce", str(run.id), "--strict-env")
    assert strict.returncode == 2
    assert strict.stdout.startswith(f"could not run: run {run.id} (train): 1 package "
                                    "difference(s) from the run's environment (--strict-env)")
    assert len(tracker.search_runs()) == 2  # the strict refusal executed nothing


def test_runs_that_cannot_be_re_executed_say_why(project, tracker, tmp_path) -> None:
    notebook = project.root / "explore.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "code", "execution_count": 3, "source": "x = 1", "outputs": [],
         "metadata": {}},
        {"cell_type": "code", "execution_count": 1, "source": "y = 2", "outputs": [],
         "metadata": {}}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with tracker.start_run("explore", source=capture.Source("jupyter", notebook)) as run:
        pass
    done = mlops_cli(project.root, "reproduce", str(run.id))
    assert done.returncode == 2
    assert done.stdout.startswith(f"could not run: run {run.id} (explore): run {run.id} is "
                                  "not reproducible: code cell 2 ran before the cell above it")

    active = tracker.start_run("still going", source=capture.Source("script", None))
    assert "is still running" in mlops_cli(project.root, "reproduce", str(active.id)).stdout
    active.end()
    assert mlops_cli(project.root, "reproduce", "999").stdout.startswith("could not run: ")
    assert mlops_cli(project.root, "reproduce", "nobody:1").returncode == 2


def test_bad_options_get_clear_errors(project, tracker, tmp_path) -> None:
    script = project.root / "ok.py"
    script.write_text("import jupyter_mlops as mlops\nwith mlops.start_run('ok'):\n    pass\n")
    assert subprocess.run([sys.executable, str(script)], cwd=project.root,
                          timeout=120).returncode == 0
    [run] = tracker.search_runs()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    done = mlops_cli(project.root, "reproduce", str(run.id), "--in", str(busy))
    assert done.returncode == 2 and "must be new or empty" in done.stdout
    assert (busy / "mine.txt").read_text() == "keep me"
    for option in (["--rtol", "-1"], ["--atol", "nan"], ["--rtol", "lots"]):
        refused = mlops_cli(project.root, "reproduce", str(run.id), *option)
        assert refused.returncode == 2 and "argument --" in refused.stderr
    named = tmp_path / "repro"
    kept = mlops_cli(project.root, "reproduce", str(run.id), "--in", str(named), "--keep")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert (named / "ok.py").is_file()


def test_a_notebook_run_in_a_subfolder_reads_its_inputs_from_there(project, tracker) -> None:
    """The working folder is recorded (mlops.workdir), so `../data/x.csv` resolves in the
    scratch folder as it did in the project."""
    (project.root / "data").mkdir()
    (project.root / "data" / "x.csv").write_text("v\n1\n2\n3\n")
    folder = project.root / "notebooks"
    folder.mkdir()
    cells = [
        {"cell_type": "code", "source": "n = 1", "metadata": {"tags": ["parameters"]},
         "outputs": [], "execution_count": None},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "%load_ext jupyter_mlops\n%mlops start --name sub\n"
                   "%mlops data ../data/x.csv\n"
                   "total = sum(int(v) for v in open('../data/x.csv').read().split()[1:]) * n\n"
                   "%mlops log total\n%mlops end"}]
    (folder / "sum.ipynb").write_text(json.dumps({
        "cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                    "display_name": "Python 3"}},
        "nbformat": 4, "nbformat_minor": 5}))
    ran = subprocess.run([sys.executable, "-m", "papermill", "sum.ipynb", "out.ipynb",
                          "-p", "n", "2"], cwd=folder, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "MLOPS_HOME": str(project.root)})
    assert ran.returncode == 0, ran.stderr
    [run] = tracker.search_runs()
    assert run.tags[capture.WORKDIR_TAG] == "notebooks"
    assert run.params["n"] == "2" and run.metrics["total"] == 12.0
    done = mlops_cli(project.root, "reproduce", str(run.id))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data/x.csv: the project's file, unchanged" in done.stdout


def test_the_magic_reproduces_and_data_keep_is_a_magic_option(ipython, tracker, project,
                                                              shown) -> None:
    from IPython.core.error import UsageError

    data = project.root / "rows.csv"
    data.write_text("a\n1\n2\n")
    script = project.root / "rows.py"
    script.write_text("import jupyter_mlops as mlops\n"
                      "with mlops.start_run('rows') as run:\n"
                      "    run.log_dataset('rows.csv', keep=True)\n"
                      "    run.log_metric('rows', 2)\n")
    assert subprocess.run([sys.executable, str(script)], cwd=project.root,
                          timeout=120).returncode == 0
    [run] = tracker.search_runs()
    data.write_text("a\n")
    ipython.run_line_magic("mlops", f"reproduce {run.id} --rtol 0.001")
    [(text, html)] = shown
    assert text.startswith(f"reproduced: run {run.id + 1} reproduces run {run.id} (rows)")
    assert html.startswith("<pre>")
    with pytest.raises(UsageError, match="tolerance"):
        ipython.run_line_magic("mlops", f"reproduce {run.id} --atol -2")

    ipython.run_line_magic("mlops", "start --name kept")
    ipython.run_line_magic("mlops", "data rows.csv --keep")
    assert shown[-1][0].endswith(", kept")
    kept = tracker.active_run.id
    ipython.run_line_magic("mlops", "end")
    assert "datasets/rows.csv" in {a.name for a in tracker.store.artifacts.for_run(kept)}


def test_a_pipeline_run_reproduces_step_by_step(example: Path, copy_of) -> None:
    root = copy_of(example)
    done = mlops_cli(root, "pipeline", "reproduce", "1", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.count("its kernel started warm") == 3  # forked from a template
    found = json.loads(done.stdout)
    assert found["verdict"] == "reproduced"
    assert [(s["step"], s["reproduction"]["verdict"]) for s in found["steps"]] == [
        ("prepare", "reproduced"), ("train", "reproduced"), ("evaluate", "reproduced")]
    train = found["steps"][1]["reproduction"]
    assert train["inputs"] == [{"source": "data/train.parquet", "found": "scratch",
                                "recorded": train["inputs"][0]["recorded"]}]
    last = found["steps"][2]["reproduction"]["run"]["id"]
    text = mlops_cli(root, "pipeline", "reproduce", "1").stdout
    assert text.splitlines()[:4] == [
        "reproduced: pipeline run 1 (breast-cancer-train), 3 step(s) re-executed from "
        "their records", f"  prepare: reproduced (run {last + 1})",
        f"  train: reproduced (run {last + 2})", f"  evaluate: reproduced (run {last + 3})"]
    cold = mlops_cli(root, "pipeline", "reproduce", "1", "--cold")
    assert cold.returncode == 0, cold.stdout + cold.stderr
    assert cold.stderr.count("its kernel started cold: asked for (--cold)") == 3
    missing = mlops_cli(root, "pipeline", "reproduce", "99")
    assert missing.returncode == 2 and missing.stdout.startswith("could not run: ")
