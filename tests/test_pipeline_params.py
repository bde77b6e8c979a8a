"""A parameter a step's notebook does not declare is refused before anything runs
(papermill would only warn, and the step run without it), naming the step, the
parameter and the declared ones; a pipeline parameter goes only where it is declared."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.pipelines.runner import PipelineRunner
from jupyter_mlops.pipelines.spec import load_spec, parameter_names
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store

from .test_pipeline_runs import FIXTURES

SPEC = """\
name: fitting
params: {seed: 7, n: 3}
steps:
  make:
    notebook: make.ipynb
    params: {out: out/numbers.txt}
  train:
    notebook: fit.ipynb
    needs: [make]
    params: {C: 0.5}
"""


@pytest.fixture
def root(project: Project) -> Path:
    for name in ("make.ipynb", "fit.ipynb"):
        shutil.copy(FIXTURES / name, project.root / name)
    (project.root / "p.yaml").write_text(SPEC)
    return project.root


def test_pipeline_params_go_only_where_declared(project: Project, root: Path) -> None:
    spec = load_spec(root / "p.yaml", root)  # fit.ipynb declares neither seed nor n: fine
    with Store(project.db_path) as store:
        runner = PipelineRunner(spec, project, store)
        assert runner.merged_params(spec.steps["train"]) == {"C": 0.5}
        assert runner.merged_params(spec.steps["make"]) == {"n": 3, "out": "out/numbers.txt"}


@pytest.mark.parametrize(("params", "message"), [
    ("{c: 0.01}", "p.yaml: pipeline 'fitting': step 'train': parameter 'c' is not declared in "
                  "the `parameters` cell of fit.ipynb (declared: C); did you mean 'C'? (line 10)"),
    ("{C: 1, max_iters: 3}", "parameter 'max_iters' is not declared in the `parameters` cell "
                             "of fit.ipynb (declared: C) (line 10)"),
])
def test_a_step_param_the_notebook_does_not_declare_is_refused(root: Path, params: str,
                                                               message: str) -> None:
    (root / "p.yaml").write_text(SPEC.replace("{C: 0.5}", params))
    with pytest.raises(InvalidInput) as raised:
        load_spec(root / "p.yaml", root)
    assert str(raised.value).endswith(message)


def test_close_names_are_suggested(root: Path) -> None:
    (root / "p.yaml").write_text(SPEC.replace("{out: out/numbers.txt}", "{outt: x.txt}"))
    with pytest.raises(InvalidInput, match=r"\(declared: n, out\); did you mean 'out'\?"):
        load_spec(root / "p.yaml", root)


def mlops(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          capture_output=True, text=True, timeout=120, cwd=root)


@pytest.mark.parametrize("command", ["run", "show"])
def test_an_undeclared_override_is_refused_before_anything_runs(project: Project, root: Path,
                                                               command: str) -> None:
    done = mlops(root, "pipeline", command, "p.yaml", "-p", "train.c=0.01")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "mlops: error: -p train.c=0.01: step 'train': parameter 'c' is not declared in the "
        "`parameters` cell of fit.ipynb (declared: C); did you mean 'C'?")
    assert "Traceback" not in done.stderr and done.stdout == ""
    with Store(project.db_path) as store:
        assert store.pipelines.recent() == [] and store.runs.search() == []
    typo = mlops(root, "pipeline", command, "p.yaml", "-p", "sed=3")
    assert typo.returncode == 1 and "declares no parameter 'sed'" in typo.stderr
    assert "did you mean 'seed'?" in typo.stderr


def test_declared_overrides_are_taken(project: Project, root: Path) -> None:
    shown = mlops(root, "pipeline", "show", "p.yaml", "-p", "train.C=0.01", "-p", "seed=3",
                  "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[1]["params"] == {"C": 0.01}


def notebook(tmp_path: Path, source: str, language: str = "python") -> Path:
    path = tmp_path / f"nb-{abs(hash((source, language)))}.ipynb"
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [],
                   "execution_count": None, "source": source}],
        "metadata": {"kernelspec": {"name": language, "language": language,
                                    "display_name": language}},
        "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.mark.parametrize(("source", "names"), [
    ("a = 1\nb: int = 2\nc, (d, *e) = 3, (4, 5)\n", ["a", "b", "c", "d", "e"]),
    ("%matplotlib inline\nalpha = 0.5  # a magic: read line by line\nbeta: float = 1\n"
     "if alpha == 1:\n    pass\n", ["alpha", "beta"]),
    ("x = 1\nx = 2\nprint(x)\n", ["x"]),
])
def test_parameter_names_read_the_parameters_cell(tmp_path: Path, source: str,
                                                  names: list[str]) -> None:
    assert parameter_names(notebook(tmp_path, source)) == names


def test_a_notebook_in_another_language_is_not_checked(tmp_path: Path) -> None:
    (tmp_path / "r.ipynb").write_bytes(notebook(tmp_path, "alpha <- 0.5\n", "R").read_bytes())
    (tmp_path / "p.yaml").write_text("name: r\nsteps:\n  fit:\n    notebook: r.ipynb\n"
                                     "    params: {alpha: 0.1}\n")
    assert load_spec(tmp_path / "p.yaml", tmp_path).steps["fit"].params == {"alpha": 0.1}
