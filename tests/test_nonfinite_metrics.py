"""One rule for non-finite metrics (issue 10 point 2): NaN and ±inf are stored and shown
as themselves, as MLflow does, from the API, the magics and a pipeline step alike, and
the filter language can find them (`metrics.loss = nan`, `metrics.grad > 1e308`)."""

from __future__ import annotations

import math
import shutil

import jupyter_mlops as mlops
from jupyter_mlops.pipelines.runner import PipelineRunner
from jupyter_mlops.pipelines.spec import load_spec
from jupyter_mlops.store import Store

from .conftest import NOTEBOOKS

EXPECTED = {"loss": math.nan, "grad": math.inf, "floor": -math.inf, "acc": 0.5}


def same(found: dict[str, float]) -> bool:
    return found.keys() == EXPECTED.keys() and all(
        (math.isnan(want) and math.isnan(found[key])) or found[key] == want
        for key, want in EXPECTED.items())


def test_the_api_stores_and_reads_back_nan_and_infinities(tracker) -> None:
    with mlops.start_run(name="api") as run:
        for key, value in EXPECTED.items():
            mlops.log_metric(key, value, step=1)
    stored = tracker.store.runs.get(run.id)
    assert same(stored.metrics)
    history = tracker.store.runs.metric_history(run.id, "loss")
    assert len(history) == 1 and math.isnan(history[0].value)


def test_the_magics_take_nan_and_inf_literals(ipython, tracker) -> None:
    ipython.run_line_magic("mlops", "start --name magic")
    ipython.run_line_magic("mlops", "log loss=nan grad=inf floor=-inf acc=0.5")
    run_id = tracker.active_run.id
    ipython.run_line_magic("mlops", "end")
    assert same(tracker.store.runs.get(run_id).metrics)


def test_a_pipeline_step_records_them_the_same(project) -> None:
    shutil.copy(NOTEBOOKS / "nonfinite.ipynb", project.root / "nonfinite.ipynb")
    spec_path = project.root / "p.yaml"
    spec_path.write_text("name: p\nsteps:\n  step:\n    notebook: nonfinite.ipynb\n")
    with Store(project.db_path) as store:
        outcome = PipelineRunner(load_spec(spec_path, project.root), project, store).run()
        assert outcome.ok, outcome
        [step] = store.pipelines.get(outcome.pipeline_run_id).steps
        assert same(store.runs.get(step.run_id).metrics)


def test_the_filter_finds_nan_and_compares_infinities(tracker) -> None:
    with mlops.start_run(name="diverged"):
        mlops.log_metric("loss", math.nan)
    with mlops.start_run(name="fine"):
        mlops.log_metric("loss", 0.3)
    with mlops.start_run(name="exploded"):
        mlops.log_metric("loss", math.inf)

    def names(expression: str) -> set[str]:
        return {run.name for run in mlops.search_runs(expression)}

    assert names("metrics.loss = nan") == {"diverged"}
    assert names("metrics.loss != NaN") == {"fine", "exploded"}
    assert names("metrics.loss = inf") == {"exploded"}
    assert names("metrics.loss < inf") == {"fine"}  # NaN is not less than anything
    assert names("metrics.loss > -inf") == {"fine", "exploded"}


def test_json_output_names_them_rather_than_null(tracker, capsys) -> None:
    import json

    from jupyter_mlops.cli.main import main

    with mlops.start_run(name="json") as run:
        for key, value in EXPECTED.items():
            mlops.log_metric(key, value)
    assert main(["runs", "show", str(run.id), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["run"]["metrics"]
    assert metrics == {"loss": "NaN", "grad": "Infinity", "floor": "-Infinity", "acc": 0.5}
    assert main(["runs", "show", str(run.id)]) == 0
    text = capsys.readouterr().out
    assert "nan" in text and "-inf" in text
