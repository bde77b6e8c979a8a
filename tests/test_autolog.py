"""Autolog for scikit-learn (issue 14): real kernels through papermill for what a notebook
does, the real store in this process for the rest."""

from __future__ import annotations

import csv
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import papermill as pm
import pytest
import sklearn.metrics as skm
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import jupyter_mlops as mlops
from jupyter_mlops.autologging.metrics import training_metrics
from jupyter_mlops.autologging.record import PARENT_TAG, cv_results_csv, estimator_params
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.tracking import Tracker

from .conftest import NOTEBOOKS


@pytest.fixture
def autolog(tracker: Tracker):
    """`mlops.autolog` that is always switched off again after the test."""
    yield mlops.autolog
    mlops.autolog(off=True)


def _classification(classes: int = 2, rows: int = 300):
    X, y = make_classification(rows, 6, n_informative=4, n_classes=classes, random_state=0)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]), pd.Series(y, name="label")


# -- in real kernels ---------------------------------------------------------------------

def _execute(project, name: str, tmp_path: Path) -> dict:
    notebook = project.root / name
    shutil.copy(NOTEBOOKS / name, notebook)
    out = tmp_path / f"out-{name}"
    pm.execute_notebook(str(notebook), str(out), cwd=str(project.root), progress_bar=False,
                        kernel_name="python3")
    return json.loads(out.read_text())


def test_a_notebook_autologs_fits_pipelines_searches_regressors_and_stops(
        tracker: Tracker, project, tmp_path: Path) -> None:
    _execute(project, "autolog.ipynb", tmp_path)
    runs = {run.name: run for run in tracker.search_runs()}
    # one run per outermost fit: no StandardScaler run, none for the search's candidates
    # (only the two children asked for), none after `--off`
    assert sorted(runs) == ["GridSearchCV", "GridSearchCV-candidate-1",
                            "GridSearchCV-candidate-2", "LogisticRegression", "Pipeline", "Ridge"]
    assert all(run.status == "finished" for run in runs.values())

    plain = mlops.show_run(runs["LogisticRegression"].id)
    assert plain.run.tags["autolog"] == "sklearn"
    assert plain.run.params["C"] == "0.5" and plain.run.params["solver"] == "lbfgs"
    assert not any("verbose" in key for key in plain.run.params)  # --exclude-params
    metrics = plain.run.metrics
    assert {"fit_time", "training_accuracy", "training_precision", "training_recall",
            "training_f1", "training_log_loss", "training_roc_auc"} <= set(metrics)
    assert 0.5 < metrics["training_accuracy"] <= 1 and metrics["fit_time"] > 0
    # the evaluation of the next cell went to the run that fitted the model, with its data
    assert 0.5 < metrics["score_X_test"] <= 1
    assert 0.5 < metrics["f1_score_X_test"] <= 1  # sklearn.metrics on its predictions
    data = {d.source: d.dataset for d in plain.datasets}
    assert set(data) == {"X_train", "y_train", "X_test", "y_test"}
    assert data["X_train"].rows == 300 and data["X_test"].rows == 100
    assert data["X_train"].schema == {f"f{i}": "float64" for i in range(6)}
    # --model churn: a model version with its signature and reference profile
    [version] = plain.models
    assert version.name == "churn" and version.version == 1
    assert [i["name"] for i in version.signature["inputs"]] == [f"f{i}" for i in range(6)]
    profile = tracker.store.predictions.profile("churn", 1)
    assert set(profile["features"]) == {f"f{i}" for i in range(6)}
    loaded = mlops.load_model("churn:1")
    assert loaded.get_params()["C"] == 0.5

    pipe = runs["Pipeline"]
    assert pipe.params["logisticregression__C"] == "1.0"
    assert "training_log_loss" not in pipe.metrics  # --exclude-metrics log_loss
    assert not mlops.show_run(pipe.id).models  # the second %mlops autolog has no --model

    search = mlops.show_run(runs["GridSearchCV"].id)
    assert search.run.params["best_logisticregression__C"] in ("0.1", "1", "10")
    assert 0.5 < search.run.metrics["best_cv_score"] <= 1
    assert "score_X_test" in search.run.metrics
    [table] = [a for a in search.artifacts if a.name == "autolog/cv_results.csv"]
    rows = list(csv.DictReader(io.StringIO(
        tracker.artifacts.read_bytes(table.digest).decode())))
    assert len(rows) == 3 and {"mean_test_score", "rank_test_score", "params"} <= set(rows[0])
    best = min(rows, key=lambda row: int(row["rank_test_score"]))
    children = [runs[f"GridSearchCV-candidate-{rank}"] for rank in (1, 2)]
    assert all(child.tags[PARENT_TAG] == search.run.uuid for child in children)
    assert [child.metrics["rank_test_score"] for child in children] == \
        sorted(float(row["rank_test_score"]) for row in rows)[:2]  # ranks may tie
    assert runs["GridSearchCV-candidate-1"].metrics["mean_test_score"] == \
        pytest.approx(float(best["mean_test_score"]))

    ridge = mlops.show_run(runs["Ridge"].id)
    assert {"training_mae", "training_rmse", "training_r2"} <= set(ridge.run.metrics)
    assert ridge.run.params["alpha"] == "0.5"
    arrays = {d.source: d.dataset for d in ridge.datasets}  # numpy arrays, by digest
    assert arrays["Xr"].rows == 200 and arrays["Xr"].schema == {"values": "float64 (200, 4)"}
    assert arrays["yr"].rows == 200


def test_a_read_only_store_warns_once_and_leaves_the_fit_alone(
        tracker: Tracker, project, tmp_path: Path) -> None:
    executed = _execute(project, "autolog_failing.ipynb", tmp_path)
    printed = "".join("".join(o.get("text", "")) for cell in executed["cells"]
                      for o in cell.get("outputs", []))
    assert "jupyter-mlops autolog: could not start a run for this fit" in printed
    assert "read-only" in printed
    assert tracker.search_runs() == []  # the notebook's own asserts checked the models


def test_autolog_inside_a_pipeline_step_glues_into_the_step_run(
        tracker: Tracker, project) -> None:
    from jupyter_mlops.pipelines.runner import PipelineRunner
    from jupyter_mlops.pipelines.spec import load_spec

    for name in ("autolog_step.ipynb", "autolog.yaml"):
        shutil.copy(NOTEBOOKS / "pipeline" / name, project.root / name)
    spec = load_spec(project.root / "autolog.yaml", project.root)
    outcome = PipelineRunner(spec, project, tracker.store).run()
    assert outcome.ok, {s: o.error for s, o in outcome.steps.items()}
    [run] = tracker.search_runs()
    assert run.tags["mlops.step"] == "fit" and run.tags["autolog"] == "sklearn"
    assert run.params["C"] == "0.5"  # papermill's parameter and the estimator's agree
    assert {"training_accuracy", "fit_time", "score_X_test"} <= set(run.metrics)
    sources = {d.source for d in tracker.store.datasets.for_run(run.id)}
    assert {"X_train", "y_train", "X_test", "y_test"} <= sources


def test_autolog_records_through_a_team_server(project, tmp_path_factory, request,
                                               tmp_path: Path, monkeypatch) -> None:
    from jupyter_mlops.project import find_project

    from .helpers import wait_for
    from .team import team_server

    server = team_server(request, tmp_path_factory)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MLOPS_URL", server.url)
    monkeypatch.setenv("MLOPS_TOKEN", server.tokens["writer"])
    remote = Tracker(find_project())
    old = mlops.use_tracker(remote)
    X, y = _classification()
    try:
        session = mlops.autolog(model_name="team-model")
        model = LogisticRegression(C=0.5).fit(X[:200], y[:200])
        model.score(X[200:], y[200:])
        session.cell_finished()
        # evaluated after its run ended: still recorded with it, through the server
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            skm.accuracy_score(y[250:], model.predict(X[250:]))
            model.score(X[250:], y[250:])  # with the digests of the evaluation data
        assert [str(w.message) for w in caught if "mlops" in str(w.message)] == []
        mlops.autolog(off=True)
        assert wait_for(lambda: [r.status for r in remote.search_runs()] == ["finished"])
        assert wait_for(lambda: "accuracy_score_eval" in remote.search_runs()[0].metrics)
        [run] = remote.search_runs()
        assert run.name == "LogisticRegression" and run.params["C"] == "0.5"
        assert {"training_accuracy", "fit_time", "eval_score"} <= set(run.metrics)
        assert remote.get_model_version("team-model:1").run_id == run.id
    finally:
        mlops.autolog(off=True)
        remote.close()
        mlops.use_tracker(old)


# -- in this process ----------------------------------------------------------------------

def test_fits_record_into_the_active_run(autolog, tracker: Tracker) -> None:
    X, y = _classification()
    autolog()
    with mlops.start_run("mine") as run:
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        assert tracker.active_run is run  # not ended, not replaced
    [recorded] = tracker.search_runs()
    assert recorded.name == "mine" and "training_accuracy" in recorded.metrics
    assert recorded.params["logisticregression__C"] == "1.0"
    assert model.predict(X).shape == (300,)


def test_a_run_of_its_own_ends_at_the_next_fit_outside_a_notebook(autolog,
                                                                   tracker: Tracker) -> None:
    X, y = _classification()
    autolog()
    LogisticRegression().fit(X, y)
    first = tracker.active_run
    assert first is not None and not first.ended
    Ridge().fit(X, y.astype(float))
    assert first.ended
    names = [run.name for run in tracker.search_runs()]
    assert names == ["Ridge", "LogisticRegression"]


def test_the_cell_end_ends_the_run_autolog_opened(autolog, tracker: Tracker) -> None:
    X, y = _classification()
    session = autolog()
    LogisticRegression().fit(X, y)
    run = tracker.active_run
    session.cell_finished()
    assert run.ended and tracker.active_run is None
    assert tracker.get_run(run.id).status == "finished"


def test_a_failing_fit_fails_its_run_and_raises_unchanged(autolog, tracker: Tracker) -> None:
    autolog()
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        LogisticRegression().fit(np.empty((0, 3)), np.empty(0))
    [run] = tracker.search_runs()
    assert run.status == "failed" and "0 sample" in run.error


def test_partial_fit_adds_steps_to_one_run(autolog, tracker: Tracker) -> None:
    X, y = _classification()
    autolog()
    model = SGDClassifier(random_state=0)
    for start in range(0, 300, 100):
        model.partial_fit(X[start:start + 100], y[start:start + 100], classes=[0, 1])
    [run] = tracker.search_runs()
    steps = [p.step for p in mlops.show_run(run.id).metric_history
             if p.key == "training_accuracy"]
    assert steps == [0, 1, 2]


@pytest.mark.parametrize("search_class", ["RandomizedSearchCV", "HalvingGridSearchCV"])
def test_other_searches_record_their_best(autolog, tracker: Tracker, search_class: str) -> None:
    from sklearn import model_selection
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401

    X, y = _classification(rows=200)
    search = getattr(model_selection, search_class)
    autolog()
    if search_class == "RandomizedSearchCV":
        search(LogisticRegression(), {"C": [0.1, 1, 10]}, n_iter=2, cv=3,
               random_state=0).fit(X, y)
    else:
        search(LogisticRegression(), {"C": [0.1, 1, 10]}, cv=3, random_state=0).fit(X, y)
    mlops.api.autolog_session().cell_finished()
    [run] = tracker.search_runs()
    assert run.name == search_class and "best_C" in run.params
    assert "best_cv_score" in run.metrics


def test_sklearn_metrics_on_an_autologged_models_predictions(autolog,
                                                             tracker: Tracker) -> None:
    from sklearn import metrics

    X, y = _classification()
    session = autolog()
    model = LogisticRegression().fit(X[:200], y[:200])
    session.cell_finished()
    predicted = model.predict(X[200:])
    accuracy = metrics.accuracy_score(y[200:], predicted)
    metrics.log_loss(y[200:], model.predict_proba(X[200:]))
    metrics.accuracy_score(y[200:], np.array(predicted))  # a copy: not its predictions
    LogisticRegression().fit(X[:100], y[:100]).predict(X)  # another model's predictions
    [_, first] = tracker.search_runs()
    assert first.metrics["accuracy_score_eval"] == accuracy
    assert "log_loss_eval" in first.metrics
    history = [p for p in mlops.show_run(first.id).metric_history
               if p.key == "accuracy_score_eval"]
    assert len(history) == 1
    mlops.autolog(off=True)
    assert not hasattr(metrics.accuracy_score, "__mlops_autolog__")


def test_exclusions_and_no_metrics(autolog, tracker: Tracker) -> None:
    X, y = _classification()
    autolog(exclude_params=["*__*", "verbose"], exclude_metrics=["*"])
    with mlops.start_run("x"):
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    [run] = tracker.search_runs()
    assert run.metrics == {}
    assert set(run.params) == {"memory", "steps", "transform_input", "standardscaler",
                               "logisticregression"}
    assert run.params["logisticregression"] == "LogisticRegression()"


@pytest.mark.parametrize("options, message", [
    ({"children": -1}, "children"),
    ({"model_name": "bad name/"}, "model name"),
    ({"exclude_params": [3]}, "exclude_params"),
])
def test_bad_options_are_one_line_errors(autolog, options, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        autolog(**options)


def test_off_restores_every_method_and_keeps_sklearn_descriptors(tracker: Tracker) -> None:
    originals = {name: Pipeline.__dict__[name] for name in ("fit", "fit_predict", "score")}
    lr_fit = LogisticRegression.__dict__["fit"]
    session = mlops.autolog()
    try:
        assert LogisticRegression.__dict__["fit"] is not lr_fit
        assert LogisticRegression.fit.__wrapped__ is lr_fit
        # available_if still decides: a pipeline ending in a scaler has no fit_predict
        assert not hasattr(make_pipeline(StandardScaler()), "fit_predict")
        assert hasattr(make_pipeline(KMeans(n_init=1)), "fit_predict")

        class Late(ClassifierMixin, BaseEstimator):  # defined after autolog started
            def fit(self, X, y):
                self.classes_ = np.unique(y)
                return self

            def predict(self, X):
                return np.zeros(len(X), dtype=int)

        assert hasattr(Late.fit, "__mlops_autolog__")
        X, y = _classification()
        Late().fit(X, y)
        assert session.recorded == 1
    finally:
        mlops.autolog(off=True)
    assert LogisticRegression.__dict__["fit"] is lr_fit
    assert {name: Pipeline.__dict__[name] for name in originals} == originals
    assert not hasattr(Late.fit, "__mlops_autolog__")
    assert "__init_subclass__" not in BaseEstimator.__dict__
    LogisticRegression().fit(*_classification())  # not recorded
    [late] = tracker.search_runs()  # the run autolog opened ended at --off
    assert late.name == "Late" and late.status == "finished"


def test_an_error_while_recording_is_one_warning(autolog, tracker: Tracker) -> None:
    X, y = _classification()
    autolog()
    with mlops.start_run("x") as run:
        LogisticRegression(C=1).fit(X, y)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = LogisticRegression(C=2)
            assert model.fit(X, y) is model  # param C changes in the same run: a Conflict
            LogisticRegression(C=2).fit(X, y)
    # ours alone: a ResourceWarning for an event loop an earlier test left may land here
    messages = [str(w.message) for w in caught if "jupyter-mlops" in str(w.message)]
    assert len(messages) == 1 and "already '1'" in messages[0], messages
    assert model.coef_.shape == (1, 6)
    points = [p for p in mlops.show_run(run.id).metric_history if p.key == "fit_time"]
    assert len(points) == 3  # the refused params did not take the metrics with them


def test_the_magic_parses_and_documents_its_options(ipython, tracker: Tracker) -> None:
    try:
        ipython.run_line_magic("mlops", "autolog --model churn --children 2 "
                                        "--exclude-params 'a,b*' --exclude-metrics '*'")
        session = mlops.api.autolog_session()
        assert session.options.model_name == "churn" and session.options.children == 2
        assert session.options.exclude_params == ("a", "b*")
        assert session.options.exclude_metrics == ("*",)
        assert session.shell is ipython
    finally:
        ipython.run_line_magic("mlops", "autolog --off")
    assert mlops.api.autolog_session() is None


def test_the_shell_ends_the_run_with_the_cell_and_refuses_bad_options(ipython,
                                                                    tracker: Tracker) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="children"):
        ipython.run_line_magic("mlops", "autolog --children -1")
    ipython.user_ns["X_cell"], ipython.user_ns["y_cell"] = _classification()
    try:
        ipython.run_line_magic("mlops", "autolog")
        result = ipython.run_cell("from sklearn.linear_model import LogisticRegression\n"
                                  "m = LogisticRegression().fit(X_cell, y_cell)")
        assert result.success
        assert tracker.active_run is None  # post_run_cell ended it
        [run] = tracker.search_runs()
        assert run.status == "finished"
        assert {d.source for d in tracker.store.datasets.for_run(run.id)} == {"X_cell",
                                                                               "y_cell"}
    finally:
        ipython.run_line_magic("mlops", "autolog --off")


def test_unload_ext_switches_autolog_off(ipython, tracker: Tracker) -> None:
    lr_fit = LogisticRegression.__dict__["fit"]
    ipython.run_line_magic("mlops", "autolog")
    try:
        assert LogisticRegression.__dict__["fit"] is not lr_fit
        ipython.run_line_magic("unload_ext", "jupyter_mlops")
        assert mlops.api.autolog_session() is None
        assert LogisticRegression.__dict__["fit"] is lr_fit
        LogisticRegression().fit(*_classification())
        assert tracker.search_runs() == []
    finally:
        ipython.run_line_magic("load_ext", "jupyter_mlops")  # as the fixture left it
        mlops.autolog(off=True)


# -- what is computed ------------------------------------------------------------------

@pytest.mark.parametrize("classes", [2, 3])
def test_classifier_metrics_match_sklearn(classes: int) -> None:
    X, y = _classification(classes)
    labels = y.map({0: "no", 1: "yes", 2: "maybe"})  # string labels, not 0..k-1
    model = LogisticRegression(C=0.05).fit(X, labels)
    got = training_metrics(model, X, labels)
    predicted, proba = model.predict(X), model.predict_proba(X)
    auc = (skm.roc_auc_score(labels, proba[:, 1]) if classes == 2 else
           skm.roc_auc_score(labels, proba, multi_class="ovr", average="weighted"))
    expected = {
        "accuracy": skm.accuracy_score(labels, predicted),
        "precision": skm.precision_score(labels, predicted, average="weighted"),
        "recall": skm.recall_score(labels, predicted, average="weighted"),
        "f1": skm.f1_score(labels, predicted, average="weighted"),
        "log_loss": skm.log_loss(labels, proba), "roc_auc": auc}
    assert got == pytest.approx({f"training_{k}": v for k, v in expected.items()})


def test_regressor_metrics_match_sklearn() -> None:
    X, y = make_regression(200, 4, noise=5.0, random_state=0)
    model = Ridge().fit(X, y)
    predicted = model.predict(X)
    assert training_metrics(model, X, y) == pytest.approx({
        "training_mae": skm.mean_absolute_error(y, predicted),
        "training_rmse": skm.root_mean_squared_error(y, predicted),
        "training_r2": skm.r2_score(y, predicted)})


def test_a_clusterer_has_no_training_metrics() -> None:
    X, _ = _classification()
    assert training_metrics(KMeans(n_clusters=2, n_init=1).fit(X), X, None) == {}


def test_params_are_numbers_or_one_line_text() -> None:
    params = estimator_params(make_pipeline(StandardScaler(), LogisticRegression(C=0.5)))
    assert params["logisticregression__C"] == 0.5
    assert params["standardscaler__with_mean"] == "True"
    assert "\n" not in params["steps"]


def test_cv_results_table_keeps_masked_cells_empty() -> None:
    results = {"param_C": np.ma.masked_array([0.1, 1.0], mask=[False, True]),
               "mean_test_score": np.array([0.8, 0.9])}
    assert cv_results_csv(results).decode() == "param_C,mean_test_score\n0.1,0.8\n,0.9\n"


# -- attack review: hostile estimators, evaluations of ended runs -------------------------

class _Unprintable:
    def __str__(self) -> str:
        raise ValueError("no text")


class _Hostile(ClassifierMixin, BaseEstimator):
    """Params a user may well have: huge text, a lambda, markup, NaN, an object without text."""

    def __init__(self, big=None, fn=None, html=None, nan=None, odd=None, broken=False):
        self.big, self.fn, self.html, self.nan, self.odd, self.broken = \
            big, fn, html, nan, odd, broken

    def get_params(self, deep=True):
        if self.broken:
            raise RuntimeError("get_params is broken")
        return super().get_params(deep)

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.zeros(len(X), dtype=int)


def test_hostile_params_are_recorded_and_a_failing_get_params_keeps_the_rest(
        autolog, tracker: Tracker) -> None:
    X, y = _classification()
    autolog()
    with mlops.start_run("hostile") as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _Hostile("x" * 10_000_000, lambda a: a, "<script>alert(1)</script>",
                         float("nan"), _Unprintable())
        assert model.fit(X, y) is model
    assert caught == []
    params = mlops.show_run(run.id).run.params
    assert len(params["big"]) == 500 and params["big"].endswith("...")
    assert params["html"] == "<script>alert(1)</script>" and params["odd"] == "<_Unprintable>"
    assert params["nan"] == "NaN"

    with mlops.start_run("broken") as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _Hostile(broken=True)
        assert model.fit(X, y) is model
    [message] = [str(w.message) for w in caught]
    assert "not fully recorded: get_params is broken" in message
    recorded = mlops.show_run(run.id)
    assert recorded.run.params == {}
    assert {"fit_time", "training_accuracy"} <= set(recorded.run.metrics)  # not lost
    assert {d.source for d in recorded.datasets} == {"X", "y"}


def test_log_evaluation_writes_into_an_ended_run_only_what_it_is_given(
        tracker: Tracker) -> None:
    X, y = _classification()
    run = mlops.start_run("trained")
    run.end()
    run.log_evaluation({"accuracy_test": 0.75}, {"X_test": X, "y_test": y})
    shown = mlops.show_run(run.id)
    assert shown.run.metrics["accuracy_test"] == 0.75 and shown.run.status == "finished"
    assert {d.source for d in shown.datasets} == {"X_test", "y_test"}
    with pytest.raises(InvalidInput, match="must be a number"):
        run.log_evaluation({"report": "text"})
    with pytest.raises(InvalidInput, match="log_evaluation takes"):
        run.log_evaluation({"ok": 1.0}, {"path": "data.csv"})
    assert "ok" not in mlops.show_run(run.id).run.metrics  # nothing half-written
    with pytest.raises(mlops.MlopsError, match="has ended"):
        run.log_metrics({"other": 1.0})  # the other log_* still refuse an ended run


def test_off_takes_autolog_out_of_set_outputs_wrapper_of_a_class_created_meanwhile(
        tracker: Tracker) -> None:
    from sklearn.base import TransformerMixin

    mlops.autolog()
    try:
        class Doubler(TransformerMixin, BaseEstimator):  # set_output wraps its fit_transform
            def fit(self, X, y=None):
                self.width_ = np.shape(X)[1]
                return self

            def transform(self, X):
                return np.asarray(X) * 2

            def fit_transform(self, X, y=None):
                return self.fit(X).transform(X)

            def get_feature_names_out(self, input_features=None):
                return np.array([f"double{i}" for i in range(self.width_)], dtype=object)

        during = Doubler.__dict__["fit_transform"]
        assert hasattr(during.__wrapped__, "__mlops_autolog__")  # ours, inside sklearn's
    finally:
        mlops.autolog(off=True)
    after = Doubler.__dict__["fit_transform"]
    assert after is during  # sklearn's wrapper stays, with the original inside it
    assert not hasattr(after, "__mlops_autolog__")
    assert not hasattr(after.__wrapped__, "__mlops_autolog__")
    assert after.__wrapped__.__qualname__.endswith("Doubler.fit_transform")
    X, _ = _classification()
    out = Doubler().set_output(transform="pandas").fit_transform(X)
    assert isinstance(out, pd.DataFrame) and out.iloc[0, 0] == 2 * X.iloc[0, 0]
    assert tracker.search_runs() == []


class _Comparable(LogisticRegression):
    """Defines __eq__, so Python gives it no hash."""

    def __eq__(self, other):
        return isinstance(other, _Comparable)


def test_an_unhashable_estimator_is_recorded_and_evaluated_without_a_warning(
        autolog, tracker: Tracker) -> None:
    import gc

    X, y = _classification()
    session = autolog()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _Comparable().fit(X, y)
        model.score(X, y)
        skm.accuracy_score(y, model.predict(X))
    assert [str(w.message) for w in caught] == []
    session.cell_finished()
    [run] = tracker.search_runs()
    assert {"training_accuracy", "eval_score", "accuracy_score_eval"} <= set(run.metrics)
    assert session.recorded == 1
    del model
    gc.collect()
    assert session._models == {}  # noqa: SLF001 - a model dropped is forgotten


@pytest.mark.parametrize("fit", ["search", "single"])
def test_ctrl_c_while_waiting_for_a_locked_store_leaves_no_run_running(
        autolog, tracker: Tracker, fit: str, request) -> None:
    """The run autolog starts waits for another process's write lock; the user presses
    Ctrl-C. A search's run starts on a thread: once the lock is free it starts and ends
    `killed` at once. A single fit's run starts before the fit, on the user's thread: the
    interrupt stops it before it exists. Neither stays `running` as the active run to
    swallow the next fits."""
    import os
    import signal
    import sqlite3
    import threading

    from .helpers import wait_for

    # Ctrl-C raises KeyboardInterrupt, as in a notebook (an earlier test's event loop may
    # have left its own SIGINT handler in this process).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    X, y = _classification()
    session = autolog()
    other = sqlite3.connect(tracker.project.db_path, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    released = threading.Event()

    def press_ctrl_c_then_release() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        released.wait(30)  # until the main thread has seen the interrupt
        other.rollback()

    threading.Timer(1.0, press_ctrl_c_then_release).start()
    interrupted = ["killed"] if fit == "search" else []
    try:
        with pytest.raises(KeyboardInterrupt):
            if fit == "search":
                GridSearchCV(LogisticRegression(), {"C": [1.0]}, cv=2).fit(X, y)
            else:
                LogisticRegression().fit(X, y)
    finally:
        released.set()
    assert wait_for(lambda: [r.status for r in tracker.search_runs()] == interrupted)
    other.close()
    assert tracker.active_run is None
    LogisticRegression(C=3).fit(X, y)  # records into a run of its own
    session.cell_finished()
    runs = {run.status: run for run in tracker.search_runs()}
    assert set(runs) == {*interrupted, "finished"}
    assert runs["finished"].params["C"] == "3"
    assert fit == "single" or runs["killed"].params == {}


def test_ctrl_c_while_recording_ends_the_run_killed(autolog, tracker: Tracker) -> None:
    class Interrupted(_Hostile):
        def get_params(self, deep=True):
            raise KeyboardInterrupt  # as if Ctrl-C landed while autolog reads the params

    autolog()
    with pytest.raises(KeyboardInterrupt):
        Interrupted().fit(*_classification())
    [run] = tracker.search_runs()
    assert run.status == "killed" and "while autolog recorded" in run.error
    assert tracker.active_run is None


def test_a_store_that_fails_every_fit_is_one_warning_for_all_estimators(
        autolog, tracker: Tracker) -> None:
    from sklearn.model_selection import GridSearchCV

    X, y = _classification()
    key = tracker.project.home / "audit.key"
    key.chmod(0o644)  # refused for every write that signs the audit log, whatever the class
    opened = Tracker(tracker.project)  # a tracker reads the key when it opens the store
    old = mlops.use_tracker(opened)
    session = autolog(model_name="churn")  # registering a model version signs the log
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            LogisticRegression().fit(X, y)
            session.cell_finished()
            Ridge().fit(X, X["f1"])
            session.cell_finished()
            GridSearchCV(LogisticRegression(), {"C": [1, 2]}, cv=2).fit(X, y)
            session.cell_finished()
    mlops.autolog(off=True)
    opened.close()
    mlops.use_tracker(old)
    key.chmod(0o600)
    [message] = [str(w.message) for w in caught]
    assert message.startswith("jupyter-mlops autolog: LogisticRegression.fit was not fully")
    assert "audit key" in message and session.recorded == 0


def test_starting_a_run_after_an_autologged_fit_ends_autologs_run(autolog,
                                                                   tracker: Tracker) -> None:
    """Outside IPython (or later in the same cell) the run autolog opened for a fit is still
    active; the user's own run must start, not be refused."""
    X, y = _classification()
    session = autolog()
    model = LogisticRegression().fit(X, y)
    with mlops.start_run("mine") as mine:
        LogisticRegression(C=2).fit(X, y)  # records into the user's run
    model.score(X, y)  # still goes to the run that fitted it
    session.cell_finished()
    runs = {run.name: run for run in tracker.search_runs()}
    assert set(runs) == {"LogisticRegression", "mine"}
    assert all(run.status == "finished" for run in runs.values())
    assert runs["mine"].params["C"] == "2" and runs["LogisticRegression"].params["C"] == "1.0"
    assert "eval_score" in runs["LogisticRegression"].metrics
    mlops.start_run("again").end()  # a run the user started is never replaced that way
    with mlops.start_run("held"), pytest.raises(mlops.MlopsError, match="still active"):
        mlops.start_run("second")
    assert mine.ended
