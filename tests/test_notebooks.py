"""Real kernels: fixture notebooks executed by papermill, and the `mlops run` command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
import papermill as pm
import pytest

from jupyter_mlops.capture import notebook_code_digest
from jupyter_mlops.tracking import Tracker

from .conftest import NOTEBOOKS

REPO = Path(__file__).parent.parent


def test_papermill_cli_run_is_recorded_with_its_notebook(tracker: Tracker, project,
                                                         tmp_path: Path) -> None:
    notebook = project.root / "tracked.ipynb"
    shutil.copy(NOTEBOOKS / "tracked.ipynb", notebook)
    result = subprocess.run([sys.executable, "-m", "papermill", "tracked.ipynb",
                             str(tmp_path / "out.ipynb"), "-p", "alpha", "0.25"],
                            capture_output=True, text=True, timeout=300, cwd=project.root)
    assert result.returncode == 0, result.stderr
    [run] = tracker.search_runs("name = 'tracked'")
    assert run.status == "finished" and run.source_kind == "papermill"
    assert run.notebook == str(notebook)
    assert run.code_digest == notebook_code_digest(notebook)
    assert run.params == {"alpha": "0.25"} and run.metrics == {"score": 0.75}
    # In a real kernel `%mlops runs` is the ipywidgets view.
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    outputs = [o for cell in executed["cells"] if "".join(cell["source"]) == "%mlops runs"
               for o in cell["outputs"]]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_papermill_api_with_the_notebook_named_in_the_environment(
        tracker: Tracker, project, tmp_path: Path, monkeypatch) -> None:
    notebook = project.root / "tracked.ipynb"
    shutil.copy(NOTEBOOKS / "tracked.ipynb", notebook)
    monkeypatch.setenv("MLOPS_NOTEBOOK_PATH", str(notebook))
    pm.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), parameters={"alpha": 0.5},
                        cwd=str(project.root), progress_bar=False)
    [run] = tracker.search_runs("name = 'tracked'")
    assert run.source_kind == "papermill" and run.notebook == str(notebook)


def test_mlops_run_records_notebook_digest_and_snapshot(tracker: Tracker, project) -> None:
    notebook = project.root / "tracked.ipynb"
    shutil.copy(NOTEBOOKS / "tracked.ipynb", notebook)
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "run",
                             str(notebook), "-p", "alpha=0.5"],
                            capture_output=True, text=True, timeout=300, cwd=project.root)
    assert result.returncode == 0, result.stderr
    [run] = tracker.search_runs("name = 'tracked'")
    assert f"uuid         {run.uuid}" in result.stdout
    assert run.source_kind == "papermill" and run.notebook == str(notebook)
    assert run.code_digest == notebook_code_digest(notebook)
    artifacts = {a.name: a for a in tracker.store.artifacts.for_run(run.id)}
    snapshot = artifacts["source/tracked.ipynb"]
    assert snapshot.digest == "blake3:" + blake3.blake3(notebook.read_bytes()).hexdigest()
    assert artifacts["executed/tracked.ipynb"].kind == "notebook"


def test_a_failing_cell_fails_the_run_and_the_command(tracker: Tracker, project) -> None:
    notebook = project.root / "fails.ipynb"
    shutil.copy(NOTEBOOKS / "fails.ipynb", notebook)
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "run",
                             str(notebook)], capture_output=True, text=True, timeout=300,
                            cwd=project.root)
    assert result.returncode == 1
    assert "RuntimeError: bad batch" in result.stderr and "executed notebook saved" in result.stderr
    [run] = tracker.search_runs("name = 'fails'")
    assert run.status == "failed" and "bad batch" in run.error
    assert run.metrics == {"alpha": 0.1}


def test_code_digest_ignores_outputs_markdown_and_metadata(tmp_path: Path) -> None:
    import nbformat

    original = nbformat.read(NOTEBOOKS / "tracked.ipynb", as_version=4)
    path = tmp_path / "n.ipynb"
    nbformat.write(original, path)
    digest = notebook_code_digest(path)
    original.cells.insert(0, nbformat.v4.new_markdown_cell("# a new title"))
    original.cells[1].outputs = [nbformat.v4.new_output("stream", text="hello")]
    original.cells[1].execution_count = 7
    original.metadata["authors"] = ["someone"]
    nbformat.write(original, path)
    assert notebook_code_digest(path) == digest
    original.cells[1].source += "\n# a comment"
    nbformat.write(original, path)
    assert notebook_code_digest(path) != digest


@pytest.mark.parametrize(("args", "message"), [
    (["run", "missing.ipynb"], "no notebook missing.ipynb"),
    (["run", "{nb}", "-p", "not an assignment"], "NAME=VALUE"),
])
def test_mlops_run_bad_input(project, args: list[str], message: str) -> None:
    shutil.copy(NOTEBOOKS / "tracked.ipynb", project.root / "t.ipynb")
    args = [a.replace("{nb}", "t.ipynb") for a in args]
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                            capture_output=True, text=True, timeout=120, cwd=project.root)
    assert result.returncode == 1 and message in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_parameters_papermill_injects_are_recorded_and_an_explicit_param_wins(
        tracker: Tracker, project, tmp_path: Path) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("alpha = 0.1\nbeta = 'x'\nepochs = 1",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("%load_ext jupyter_mlops\n%mlops start --name injected"),
        nbformat.v4.new_code_cell("alpha = 0.9\n%mlops param alpha"),
        nbformat.v4.new_code_cell("%mlops end"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})
    path = project.root / "injected.ipynb"
    nbformat.write(notebook, path)
    result = subprocess.run([sys.executable, "-m", "papermill", path.name,
                             str(tmp_path / "out.ipynb"), "-p", "alpha", "0.25",
                             "-p", "beta", "y", "-p", "epochs", "30", "-p", "layers", "[2, 3]"],
                            capture_output=True, text=True, timeout=300, cwd=project.root)
    assert result.returncode == 0, result.stderr
    [run] = tracker.search_runs("name = 'injected'")
    # alpha: the notebook's own %mlops param wins over papermill's 0.25
    assert run.params == {"alpha": "0.9", "beta": "y", "epochs": "30", "layers": "[2, 3]"}


def test_injected_parameters_reads_literal_assignments_only() -> None:
    from jupyter_mlops.capture import _literal_assignments

    code = "# Parameters\na = 1\nb = 'two'\nc = [1, 2]\nd = open('x')\ne, f = 1, 2\n"
    assert _literal_assignments(code) == {"a": 1, "b": "two", "c": [1, 2]}
    assert _literal_assignments("# Parameters\nthis is not python") == {}
