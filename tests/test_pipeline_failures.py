"""A step's failure is kept whole (cell, source, exception, traceback), says whose fault
it is (the notebook's, the kernel's, the pipeline's rules, or a bug of ours), and is
shown by `mlops pipeline runs` and `mlops runs show`; a report that can't be rendered
is a warning on its step."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlops.pipelines import execution, runner
from jupyter_mlops.pipelines.execution import StepResult, StepTask
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store
from jupyter_mlops.store.records import StepFailure

from .test_pipeline_runs import FIXTURES, run_pipeline

BROKEN = """\
name: broken
steps:
  broken:
    notebook: use.ipynb
    params: {count: 3, path: numbers.txt, fail: true}
"""

TWO = """\
name: two
steps:
  first:
    notebook: sleep.ipynb
    params: {seconds: 0, label: first}
  second:
    notebook: sleep.ipynb
    params: {seconds: 0, label: second}
"""


def mlops(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          capture_output=True, text=True, timeout=300, cwd=project.root)


@pytest.fixture
def broken(project: Project) -> Path:
    for name in ("use.ipynb", "sleep.ipynb"):
        shutil.copy(FIXTURES / name, project.root / name)
    (project.root / "numbers.txt").write_text("0\n1\n2\n")
    spec = project.root / "broken.yaml"
    spec.write_text(BROKEN)
    return spec


def test_a_failing_cell_is_kept_whole_and_shown(project: Project, broken: Path) -> None:
    outcome, steps = run_pipeline(project, broken)
    assert outcome.status == "failed"
    failure = steps["broken"].failure
    assert failure == outcome.steps["broken"].failure
    assert failure.kind == "notebook" and failure.cell == 3
    assert failure.ename == "ValueError" and failure.evalue == "asked to fail after summing 3"
    assert "raise ValueError(f'asked to fail after summing {total}')" in failure.source
    assert failure.message == "cell 3 raised ValueError: asked to fail after summing 3"
    traceback = "\n".join(failure.traceback)
    assert "ValueError" in traceback and "\x1b[" not in traceback  # plain text, no colours
    assert "cell 3 raised ValueError" in steps["broken"].error  # the one line stays

    listed = mlops(project, "pipeline", "runs")
    assert listed.returncode == 0, listed.stderr
    assert "broken: [notebook] cell 3 raised ValueError: asked to fail after summing 3" \
        in listed.stdout
    shown = mlops(project, "pipeline", "runs", str(outcome.pipeline_run_id))
    assert shown.returncode == 0, shown.stderr
    assert "kind: notebook (a notebook cell raised)" in shown.stdout
    assert "cell: 3" in shown.stdout and "raise ValueError(" in shown.stdout
    assert "traceback:" in shown.stdout
    as_json = json.loads(mlops(project, "pipeline", "runs", str(outcome.pipeline_run_id),
                               "--json").stdout)
    assert as_json["steps"][0]["failure"]["cell"] == 3
    run = mlops(project, "runs", "show", str(steps["broken"].run_id))
    assert run.returncode == 0, run.stderr
    assert "failure (step 'broken' of pipeline run" in run.stdout
    assert "exception: ValueError: asked to fail after summing 3" in run.stdout
    assert "raise ValueError(" in run.stdout
    missing = mlops(project, "pipeline", "runs", "999")
    assert missing.returncode == 1 and "no pipeline run 999" in missing.stderr


def test_a_bug_of_ours_is_told_apart_from_the_notebooks(project: Project, broken: Path,
                                                         monkeypatch) -> None:
    """A bug can't be produced on purpose: ingest is made to raise as a bug would."""
    def ingest_with_a_bug(*args, **kwargs):
        return {}["missing"]

    monkeypatch.setattr(runner, "ingest", ingest_with_a_bug)
    spec = project.root / "two.yaml"
    spec.write_text(TWO.replace("  second:\n    notebook: sleep.ipynb\n"
                                "    params: {seconds: 0, label: second}\n", ""))
    outcome, steps = run_pipeline(project, spec)
    failure = steps["first"].failure
    assert steps["first"].status == "failed" and failure.kind == "runner"
    assert failure.message.startswith("internal error in jupyter-mlops (a bug")
    assert failure.ename == "KeyError" and failure.cell is None
    traceback = "".join(failure.traceback)
    assert "ingest_with_a_bug" in traceback and "runner.py" in traceback  # our traceback
    with Store(project.db_path) as store:
        assert store.runs.get(steps["first"].run_id).status == "failed"
    shown = mlops(project, "pipeline", "runs", str(outcome.pipeline_run_id))
    assert "kind: runner (a bug in jupyter-mlops, not in the notebook)" in shown.stdout


def test_a_bug_before_the_kernel_starts_fails_that_step_only(project: Project, broken: Path,
                                                              monkeypatch) -> None:
    calls = []

    def create_file_with_a_bug(path):  # noqa: ANN001
        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("a bug in the step's setup")
        return original(path)

    original = execution.create_file_with_mode
    monkeypatch.setattr(execution, "create_file_with_mode", create_file_with_a_bug)
    spec = project.root / "two.yaml"
    spec.write_text(TWO)
    outcome, steps = run_pipeline(project, spec)
    assert {n: s.status for n, s in steps.items()} == {"first": "failed", "second": "finished"}
    failure = steps["first"].failure
    assert failure.kind == "runner" and failure.evalue == "a bug in the step's setup"
    assert "create_file_with_a_bug" in "".join(failure.traceback)
    assert outcome.status == "failed"


class RaisingExecutor:
    """Stands in for a Dask cluster that lost the worker running a step."""

    name = "raising"
    remote = True

    def __init__(self, failure: object = None) -> None:
        self.failure = failure

    def execute(self, task: StepTask) -> StepResult:
        if self.failure is None:
            raise ConnectionResetError("the worker running this step went away")
        return StepResult(step=task.step, notebook_json=b"", error="x", failure=self.failure)

    def interrupt(self) -> None: ...
    def close(self) -> None: ...


def test_an_executor_that_raises_fails_the_step_not_the_pipeline(project: Project,
                                                                  broken: Path) -> None:
    spec = project.root / "two.yaml"
    spec.write_text(TWO)
    outcome, steps = run_pipeline(project, spec, executor=RaisingExecutor(), jobs=2)
    assert outcome.status == "failed"
    for step in steps.values():
        assert step.status == "failed" and step.failure.kind == "kernel"
        assert "ConnectionResetError: the worker running this step went away" in step.error


@pytest.mark.parametrize("forged", [
    StepFailure(kind="root", message="x"),
    StepFailure(kind="notebook", message="x", traceback=5),  # type: ignore[arg-type]
    StepFailure(kind="notebook", message="x", cell="3"),  # type: ignore[arg-type]
    "cell 3 raised",
])
def test_a_forged_failure_from_a_remote_executor_is_refused(project: Project, broken: Path,
                                                            forged: object) -> None:
    spec = project.root / "two.yaml"
    spec.write_text(TWO)
    _, steps = run_pipeline(project, spec, executor=RaisingExecutor(forged))
    assert steps["first"].failure.kind == "step"
    assert "the executor sent back a" in steps["first"].error


def test_a_huge_remote_failure_is_bounded(project: Project, broken: Path) -> None:
    huge = StepFailure(kind="notebook", message="m" * 10 + "\nsecond line", cell=1,
                       source="s" * 100_000, traceback=tuple("t" * 1000 for _ in range(1000)))
    spec = project.root / "two.yaml"
    spec.write_text(TWO)
    _, steps = run_pipeline(project, spec, executor=RaisingExecutor(huge))
    failure = steps["first"].failure
    assert failure.kind == "notebook" and failure.message == "m" * 10
    assert len(failure.source) < 21_000 and sum(map(len, failure.traceback)) < 22_000


def test_a_report_that_cannot_be_rendered_is_a_warning_on_its_step(project: Project,
                                                                   broken: Path) -> None:
    """A markdown cell showing an attachment the notebook doesn't hold: papermill runs it,
    nbconvert refuses to render it."""
    notebook = json.loads((project.root / "sleep.ipynb").read_text())
    notebook["cells"].append({"cell_type": "markdown", "metadata": {},
                              "source": "![the plot](attachment:plot.png)"})
    (project.root / "sleep.ipynb").write_text(json.dumps(notebook))
    spec = project.root / "two.yaml"
    spec.write_text(TWO.replace("  second:\n    notebook: sleep.ipynb\n"
                                "    params: {seconds: 0, label: second}\n", ""))
    outcome, steps = run_pipeline(project, spec)
    assert outcome.ok  # a report is evidence, not a reason to fail the step
    [warning] = steps["first"].warnings
    assert warning.startswith("the HTML report could not be rendered: ")
    assert "plot.png" in warning and outcome.steps["first"].warnings == [warning]
    with Store(project.db_path) as store:
        kinds = {a.kind for a in store.artifacts.for_run(steps["first"].run_id)}
    assert "report" not in kinds and "notebook" in kinds
    listed = mlops(project, "pipeline", "runs")
    assert f"first: warning: {warning}" in listed.stdout
    run = mlops(project, "runs", "show", str(steps["first"].run_id))
    assert "warnings:" in run.stdout and "plot.png" in run.stdout
