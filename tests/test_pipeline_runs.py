"""Pipelines executed for real: papermill kernels, the store, the step cache."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from jupyter_mlops.pipelines.runner import PipelineRunner
from jupyter_mlops.pipelines.spec import load_spec
from jupyter_mlops.project import Project, find_project
from jupyter_mlops.store import Store

from .conftest import NOTEBOOKS
from .helpers import alive, descendants, wait_for

FIXTURES = NOTEBOOKS / "pipeline"


@pytest.fixture
def chain(project: Project) -> Path:
    for name in ("make.ipynb", "use.ipynb", "sleep.ipynb", "chain.yaml"):
        shutil.copy(FIXTURES / name, project.root / name)
    return project.root / "chain.yaml"


def run_pipeline(project: Project, spec_path: Path, **kwargs):
    with Store(project.db_path) as store:
        spec = load_spec(spec_path, project.root)
        outcome = PipelineRunner(spec, project, store, **kwargs).run()
        steps = {s.step: s for s in store.pipelines.get(outcome.pipeline_run_id).steps}
    return outcome, steps


def test_steps_run_glue_outputs_and_are_recorded(project: Project, chain: Path,
                                                 tracker) -> None:
    outcome, steps = run_pipeline(project, chain)
    assert outcome.ok, {s: o.error for s, o in outcome.steps.items()}
    assert {name: s.status for name, s in steps.items()} == {"make": "finished",
                                                              "use": "finished"}
    assert steps["make"].outputs == {"count": 3, "path": "out/numbers.txt"}
    assert steps["use"].params == {"count": 3, "path": "out/numbers.txt"}
    assert steps["use"].outputs == {"total": 3}
    make_run = tracker.get_run(steps["make"].run_id)
    assert make_run.status == "finished" and make_run.source_kind == "pipeline"
    assert make_run.params == {"n": "3", "out": "out/numbers.txt"}
    assert make_run.metrics == {"n": 3.0}
    assert make_run.tags["mlops.step"] == "make"
    kinds = {a.name: a.kind for a in tracker.store.artifacts.for_run(make_run.id)}
    assert kinds["executed/make.ipynb"] == "notebook" and kinds["report/make.html"] == "report"
    report = [a for a in tracker.store.artifacts.for_run(make_run.id) if a.kind == "report"][0]
    html = tracker.artifacts.read_bytes(report.digest).decode()
    assert "<html" in html and "application/scrapbook" not in html and "mlops.record" not in html
    [output] = [d for d in tracker.store.datasets.for_run(make_run.id) if d.role == "output"]
    assert output.source == "out/numbers.txt"
    assert steps["make"].output_files == {"out/numbers.txt": output.dataset.digest}


def test_a_glued_notebook_reads_with_scrapbook(project: Project, chain: Path) -> None:
    import scrapbook as sb

    _, steps = run_pipeline(project, chain)
    scraps = sb.read_notebook(steps["make"].notebook_path).scraps
    assert scraps["count"].data == 3
    assert any(name.startswith("mlops.record.") for name in scraps)


def _statuses(steps) -> dict[str, str]:
    return {name: s.status for name, s in steps.items()}


def test_the_cache_reuses_and_invalidates_exactly(project: Project, chain: Path) -> None:
    run_pipeline(project, chain)
    _, steps = run_pipeline(project, chain)
    assert _statuses(steps) == {"make": "cached", "use": "cached"}

    notebook = project.root / "make.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[1].source += "\n\nA new sentence in markdown."
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="stale output")]
    nbformat.write(nb, notebook)
    _, steps = run_pipeline(project, chain)
    assert _statuses(steps) == {"make": "cached", "use": "cached"}

    nb.cells[3].source += "\n# a code change"
    nbformat.write(nb, notebook)
    _, steps = run_pipeline(project, chain)
    assert _statuses(steps) == {"make": "finished", "use": "finished"}

    _, steps = run_pipeline(project, chain, overrides=["n=4"])
    assert _statuses(steps) == {"make": "finished", "use": "finished"}
    assert steps["use"].outputs == {"total": 6}

    _, steps = run_pipeline(project, chain, overrides=["n=4"], force=["use"])
    assert _statuses(steps) == {"make": "cached", "use": "finished"}


def test_one_changed_input_byte_re_executes(project: Project, chain: Path) -> None:
    data = project.root / "input.txt"
    data.write_text("abc")
    spec = chain.read_text().replace("    outputs: [out/numbers.txt]",
                                     "    inputs: [input.txt]\n    outputs: [out/numbers.txt]")
    chain.write_text(spec)
    run_pipeline(project, chain)
    _, steps = run_pipeline(project, chain)
    assert steps["make"].status == "cached"
    data.write_text("abd")
    _, steps = run_pipeline(project, chain)
    assert steps["make"].status == "finished"


def test_a_cached_step_restores_missing_outputs(project: Project, chain: Path) -> None:
    run_pipeline(project, chain)
    output = project.root / "out" / "numbers.txt"
    original = output.read_bytes()
    output.unlink()
    _, steps = run_pipeline(project, chain)
    assert _statuses(steps) == {"make": "cached", "use": "cached"}
    assert output.read_bytes() == original


BRANCHES = """\
name: branches
steps:
  make:
    notebook: make.ipynb
    outputs: [out/numbers.txt]
  broken:
    notebook: use.ipynb
    needs: [make]
    params: {count: 3, path: out/numbers.txt, fail: true}
  after_broken:
    notebook: use.ipynb
    needs: [broken]
    params: {count: 3, path: out/numbers.txt}
  fine:
    notebook: use.ipynb
    needs: [make]
    params: {count: 3, path: out/numbers.txt}
"""


def test_a_failing_cell_fails_its_step_and_skips_dependents(project: Project,
                                                          chain: Path, tracker) -> None:
    spec = project.root / "branches.yaml"
    spec.write_text(BRANCHES)
    outcome, steps = run_pipeline(project, spec)
    assert outcome.status == "failed" and not outcome.ok
    assert _statuses(steps) == {"make": "finished", "broken": "failed",
                                "after_broken": "skipped", "fine": "finished"}
    error = steps["broken"].error
    assert "step 'broken' (use.ipynb) failed: cell 3 raised ValueError" in error
    assert "asked to fail after summing 3" in error
    assert str(project.cache_dir / "pipelines") in error and Path(error.split(
        "executed notebook: ")[1]).exists()
    broken_run = tracker.get_run(steps["broken"].run_id)
    assert broken_run.status == "failed"
    assert "needs broken" in steps["after_broken"].error
    assert not [s for s in steps.values() if s.status in ("running", "pending")]


PARALLEL = """\
name: parallel
steps:
  left:
    notebook: sleep.ipynb
    params: {seconds: 2, label: left}
  right:
    notebook: sleep.ipynb
    params: {seconds: 2, label: right}
"""


def test_independent_steps_run_concurrently(project: Project, chain: Path) -> None:
    spec = project.root / "parallel.yaml"
    spec.write_text(PARALLEL)
    outcome, steps = run_pipeline(project, spec, jobs=2)
    assert outcome.ok
    left, right = steps["left"], steps["right"]
    assert left.started_at < right.ended_at and right.started_at < left.ended_at  # overlap
    assert left.outputs == {"label": "left"} and right.outputs == {"label": "right"}


def test_ctrl_c_stops_kernels_and_leaves_nothing_running(project: Project,
                                                         chain: Path) -> None:
    spec = project.root / "slow.yaml"
    spec.write_text(PARALLEL.replace("seconds: 2", "seconds: 120"))
    # Ctrl-C as a terminal sends it: the runner starts with SIGINT's default disposition,
    # whatever an earlier test left in this process (an ignored signal is inherited).
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline", "run",
                             str(spec), "--jobs", "2"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    store = Store(project.db_path)

    def both_running() -> bool:
        runs = store.pipelines.recent("parallel")
        return bool(runs) and all(s.status == "running" for s in runs[0].steps)

    assert wait_for(both_running, timeout=60)
    # Kernels started: the template process and a kernel it forked, or two cold kernels
    # (on a loaded machine the template's imports take many seconds).
    assert wait_for(lambda: len(descendants(proc.pid)) >= 2, timeout=120)
    time.sleep(1.5)
    started = descendants(proc.pid)
    assert started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    [run] = store.pipelines.recent("parallel")
    assert run.status == "killed"
    assert {s.status for s in run.steps} == {"killed"}
    for step in run.steps:
        assert store.runs.get(step.run_id).status == "killed"
    assert wait_for(lambda: not any(alive(pid) for pid in started), timeout=60)
    store.close()


def test_kill_9_sweeps_the_steps_with_their_pipeline(project: Project, chain: Path) -> None:
    """A runner killed with SIGKILL can't finish its records: once its heartbeat is
    stale, its running steps read as killed and its pending ones as skipped."""
    spec = project.root / "slow.yaml"
    spec.write_text(PARALLEL.replace("seconds: 2", "seconds: 120"))
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline", "run",
                             str(spec), "--jobs", "1"], cwd=project.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with Store(project.db_path) as store:

        def a_step_running() -> bool:
            runs = store.pipelines.recent("parallel")
            return bool(runs) and any(s.status == "running" for s in runs[0].steps)

        assert wait_for(a_step_running, timeout=60)
    proc.kill()
    proc.wait(timeout=30)
    time.sleep(1.5)
    with Store(project.db_path, stale_after_seconds=1) as store:  # the heartbeat is stale
        [run] = store.pipelines.recent("parallel")
        assert run.status == "killed"
        statuses = {s.status for s in run.steps}
        assert "killed" in statuses and statuses <= {"killed", "skipped"}


def test_dask_executor_runs_steps_on_process_workers(project: Project, chain: Path,
                                                     tracker) -> None:
    pytest.importorskip("distributed")
    from jupyter_mlops.pipelines.executors import DaskExecutor

    executor = DaskExecutor()
    try:
        outcome, steps = run_pipeline(project, chain, executor=executor, jobs=2)
    finally:
        executor.close()
    assert outcome.ok, {s: o.error for s, o in outcome.steps.items()}
    assert steps["use"].outputs == {"total": 3}
    make_run = tracker.get_run(steps["make"].run_id)
    assert make_run.metrics == {"n": 3.0}
    names = {a.name for a in tracker.store.artifacts.for_run(make_run.id)}
    assert {"executed/make.ipynb", "report/make.html", "source/make.ipynb"} <= names
    assert make_run.tags["mlops.kernel"].startswith("cold: the Dask executor runs steps")


def test_cli_run_show_and_runs(project: Project, chain: Path) -> None:
    def mlops(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                              capture_output=True, text=True, timeout=300, cwd=project.root)

    shown = mlops("pipeline", "show", "chain.yaml", "--json")
    assert [s["would"] for s in json.loads(shown.stdout)] == ["run", "run"]
    first = mlops("pipeline", "run", "chain.yaml", "-p", "use.fail=false")
    assert first.returncode == 0, first.stderr
    assert "+ make: finished" in first.stderr
    again = mlops("pipeline", "run", "chain.yaml", "-p", "use.fail=false")
    assert again.returncode == 0 and "cached" in again.stdout
    shown = mlops("pipeline", "show", "chain.yaml")
    assert "cached (run" in shown.stdout
    runs = json.loads(mlops("pipeline", "runs", "--json").stdout)
    assert [s["status"] for s in runs[0]["steps"]] == ["cached", "cached"]
    bad = mlops("pipeline", "run", "chain.yaml", "-p", "nope=1")
    assert bad.returncode == 1 and "declares no parameter 'nope'" in bad.stderr
    bad = mlops("pipeline", "run", "chain.yaml", "--force", "ghost")
    assert bad.returncode == 1 and "no step ghost" in bad.stderr
    failing = mlops("pipeline", "run", "chain.yaml", "-p", "use.fail=true")
    assert failing.returncode == 1 and "cell 3 raised ValueError" in failing.stderr


def test_dask_missing_is_a_clear_error(monkeypatch) -> None:
    from jupyter_mlops.errors import MlopsError
    from jupyter_mlops.pipelines.executors import DaskExecutor

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(MlopsError, match=r"pip install 'jupyter-mlops\[dask\]'"):
        DaskExecutor()


def test_unreachable_dask_scheduler_is_a_clear_error() -> None:
    pytest.importorskip("distributed")
    from jupyter_mlops.errors import MlopsError
    from jupyter_mlops.pipelines.executors import DaskExecutor

    with pytest.raises(MlopsError, match="cannot reach the Dask scheduler"):
        DaskExecutor("tcp://127.0.0.1:9")


@pytest.mark.parametrize(("threshold", "status"), [(0.5, "finished"), (0.999, "failed")])
def test_a_step_can_run_the_gates_and_fail_on_them(project: Project, tracker, threshold: float,
                                                   status: str) -> None:
    from sklearn.datasets import load_iris

    shutil.copy(FIXTURES / "fit.ipynb", project.root / "fit.ipynb")
    load_iris(as_frame=True).frame.to_csv(project.root / "eval.csv", index=False)
    (project.home / "config.toml").write_text(
        "[registry]\nevaluation_data = 'eval.csv'\nevaluation_target = 'target'\n"
        f"[[gates]]\ncheck = 'accuracy >= {threshold}'\n")
    spec = project.root / "gated.yaml"
    spec.write_text("name: gated\nsteps:\n  fit:\n    notebook: fit.ipynb\n    gates: true\n")
    outcome, steps = run_pipeline(find_project(project.root), spec)  # re-read the config
    assert steps["fit"].status == status
    gates = tracker.store.gates.latest("iris", 1)
    assert [g.passed for g in gates] == [status == "finished"]
    if status == "failed":
        assert "gates failed: iris:1: accuracy >= 0.999" in steps["fit"].error
