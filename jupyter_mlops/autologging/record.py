"""What an autologged fit records into a run: params, fit time, training metrics, the
digests of X and y, a search's results and children, the model, later evaluations.

Each function takes the `ActiveRun` to record into and raises whatever the
run raises; `session.AutologSession` turns an error into one warning.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import numbers
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..datasets import is_dataframe, is_table
from ..errors import Conflict
from .metrics import training_metrics, wanted

MAX_PARAM_TEXT = 500  # characters kept of a param shown as text (an estimator's repr)
CV_RESULTS_ARTIFACT = "autolog/cv_results.csv"
PARENT_TAG = "parent_run"

# The name of the notebook variable holding a value, or None (see `AutologSession`).
Namer = Callable[[Any], "str | None"]


def param_value(value: object) -> object:
    """Numbers stay numbers; anything else is its text on one line, cut at MAX_PARAM_TEXT.

    Only the head of a long text is cleaned (a 10 MB string param costs no 10 MB
    copies), and a value whose `str` raises is shown as `<TypeName>`: one odd param
    must not cost the record of the fit.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return value
    try:
        text = str(value)
    except Exception:
        return f"<{type(value).__name__}>"
    text = " ".join(text[:2 * MAX_PARAM_TEXT].split())
    return text if len(text) <= MAX_PARAM_TEXT else text[:MAX_PARAM_TEXT - 3] + "..."


def estimator_params(estimator: Any, exclude: Iterable[str] = ()) -> dict[str, object]:
    """`get_params(deep=True)` (already flat: `step__param`), minus the names matching an
    `exclude` pattern (`fnmatch`: `"*verbose"`, `"estimator"`)."""
    exclude = tuple(exclude)
    return {key: param_value(value) for key, value in estimator.get_params(deep=True).items()
            if not any(fnmatch.fnmatchcase(key, pattern) for pattern in exclude)}


def record_fit(run: Any, estimator: Any, X: Any, y: Any, seconds: float, *,
               exclude_params: Iterable[str] = (), exclude_metrics: Iterable[str] = (),
               model_name: str | None = None, step: int | None = None,
               namer: Namer = lambda value: None) -> None:
    """Everything one outermost fit records; `step` numbers the calls of `partial_fit`.

    Params that can't be recorded (`Conflict`: another fit gave one another value in
    this run; or the estimator's own `get_params` raised) are raised after the rest is
    recorded, so metrics and data are not lost with them.
    """
    refused: Exception | None = None
    try:
        params = estimator_params(estimator, exclude_params)
    except Exception as exc:  # noqa: BLE001 - the estimator's own; raised after the rest
        params, refused = {}, exc
    try:
        run.log_params(params)
    except Conflict as exc:  # a store error is raised at once: the rest would fail too
        refused = exc
    metrics: dict[str, float] = {}
    if wanted("fit_time", exclude_metrics):
        metrics["fit_time"] = seconds
    metrics.update(training_metrics(estimator, X, y, exclude_metrics))
    if is_search(estimator):
        metrics.update(search_summary(run, estimator, exclude_params, exclude_metrics))
    if metrics:
        run.log_metrics(metrics, step=step)
    log_data(run, X, namer(X) or "X")
    if y is not None:
        log_data(run, y, namer(y) or "y")
    if model_name is not None:
        example = X if is_dataframe(X) else None
        run.log_model(estimator, model_name, input_example=example)
    if refused is not None:
        raise refused


def log_data(run: Any, value: Any, name: str) -> None:
    """Record an in-memory table by digest (no copy); other inputs (lists, sparse
    matrices) have no digest and are skipped."""
    if is_table(value):
        run.log_dataset(value, role="input", name=name)


def searches(estimator: Any) -> bool:
    """Whether `estimator` is a hyper-parameter search, fitted or not (scikit-learn's
    searches all derive from `BaseSearchCV`, which `model_selection` does not export)."""
    from sklearn.model_selection._search import BaseSearchCV

    return isinstance(estimator, BaseSearchCV)


def is_search(estimator: Any) -> bool:
    """A fitted hyper-parameter search (`GridSearchCV`, `RandomizedSearchCV`, halving)."""
    return hasattr(estimator, "cv_results_") and hasattr(estimator, "best_index_")


def search_summary(run: Any, search: Any, exclude_params: Iterable[str],
                   exclude_metrics: Iterable[str]) -> dict[str, float]:
    """Log the best params (`best_<name>`) and `cv_results_` as a CSV artifact; return
    the best score as a metric."""
    exclude = tuple(exclude_params)
    best = {f"best_{key}": param_value(value) for key, value in search.best_params_.items()
            if not any(fnmatch.fnmatchcase(key, pattern) for pattern in exclude)}
    if best:
        run.log_params(best)
    write_artifact(run, CV_RESULTS_ARTIFACT, cv_results_csv(search.cv_results_))
    score = getattr(search, "best_score_", None)
    if isinstance(score, numbers.Real) and wanted("best_cv_score", exclude_metrics):
        return {"best_cv_score": float(score)}
    return {}


def cv_results_csv(results: Mapping[str, Any]) -> bytes:
    """`cv_results_` as CSV text: one row per candidate (the `params` column as text)."""
    columns = list(results)
    rows = len(results[columns[0]]) if columns else 0
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for i in range(rows):
        writer.writerow([_cell(results[column][i]) for column in columns])
    return out.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    if value is None or value is _masked():
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))  # numpy 2 reprs its scalars as np.float64(...)
    return str(value)


def _masked() -> Any:
    import numpy as np

    return np.ma.masked


def write_artifact(run: Any, name: str, data: bytes) -> None:
    """Store bytes as an artifact of `run` (through a temporary file: `log_artifact`
    takes a path)."""
    fd, path = tempfile.mkstemp(prefix="mlops-autolog-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        run.log_artifact(Path(path), name=name)
    finally:
        os.unlink(path)


def top_candidates(search: Any, count: int) -> list[int]:
    """Indices of the `count` best candidates of a fitted search, best first."""
    results = search.cv_results_
    refit = getattr(search, "refit", True)
    key = f"rank_test_{refit}" if isinstance(refit, str) else "rank_test_score"
    if key not in results:
        return []
    ranks = results[key]
    return sorted(range(len(ranks)), key=lambda i: (int(ranks[i]), i))[:count]


def record_children(tracker: Any, parent: Any, search: Any, count: int,
                    exclude_params: Iterable[str] = ()) -> int:
    """The top `count` candidates of `search` as runs of their own, tagged with the
    parent's uuid (`parent_run`); the parent stays the active run. Returns how many."""
    results = search.cv_results_
    exclude = tuple(exclude_params)
    indices = top_candidates(search, count)
    metric_keys = [k for k in results if k.startswith(("mean_test_", "std_test_",
                                                       "rank_test_", "mean_fit_time"))]
    tracker.active_run = None  # a child starts beside its parent, which stays open
    try:
        for rank, index in enumerate(indices, 1):
            params = {key: param_value(value) for key, value in results["params"][index].items()
                      if not any(fnmatch.fnmatchcase(key, pattern) for pattern in exclude)}
            child = tracker.start_run(f"{parent.name or 'search'}-candidate-{rank}",
                                      tags={PARENT_TAG: parent.uuid}, params=params)
            try:
                metrics = {key: float(results[key][index]) for key in metric_keys
                           if isinstance(results[key][index], numbers.Real)}
                if metrics:
                    child.log_metrics(metrics)
            finally:
                child.end("finished")
    finally:
        tracker.active_run = parent
    return len(indices)


def record_evaluation(run: Any, value: Any, X: Any, y: Any, namer: Namer) -> str | None:
    """A later `score(X, y)` of an autologged model: metric `score_<X's variable>`
    (`eval_score` when X is no variable) with the digests of X and y, in the run that
    fitted the model, ended or not (`ActiveRun.log_evaluation`). Returns the metric's
    name, or None for a score that isn't a number.
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return None
    x_name = namer(X)
    key = f"score_{x_name}" if x_name else "eval_score"
    datasets = {namer(data) or default: data for data, default in ((X, "X_eval"), (y, "y_eval"))
                if data is not None and is_table(data)}
    run.log_evaluation({key: value}, datasets)
    return key


def record_metric(run: Any, key: str, value: Any) -> bool:
    """Log an evaluation metric into `run`, ended or not (see `record_evaluation`);
    False for a value that isn't a number (a per-class array, a report)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    run.log_evaluation({key: value})
    return True
