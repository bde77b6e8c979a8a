"""Labels (issue 10 point 3): each row is checked against the model that made the
prediction, a label can be corrected (the last upload wins, the report counts the
corrections), and the report's metrics follow the model, not the label values."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.monitoring.predlog import PredictionLog, prediction_frame
from jupyter_mlops.monitoring.report import build_report


def mlops_cli(project, *args):
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          capture_output=True, text=True, cwd=project.root, timeout=300)


def log_model_and_predictions(project, tracker, model, X, name, *, example=True,
                              request_ids=None):
    """Log `model` as version 1 of `name` and its predictions on `X`; returns the frame."""
    from jupyter_mlops.monitoring.profile import model_outputs

    with tracker.start_run("fit") as run:
        run.log_model(model, name=name, input_example=X if example else None)
    frame = prediction_frame(X, model_outputs(model, X), version=1, request_ids=request_ids)
    PredictionLog(project).write(tracker.store, name, frame, "batch")
    return frame


@pytest.fixture
def iris(project, tracker):
    """A multiclass classifier (classes 0, 1, 2) and its 150 logged predictions."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    frame = log_model_and_predictions(project, tracker, model, X, "iris")
    return project, frame, y.to_numpy()


def upload(project, tracker, name, ids, labels):
    return PredictionLog(project).write_labels(
        tracker.store, name, pd.DataFrame({"request_id": ids, "label": labels}))


def test_a_nan_label_is_refused_naming_its_line(iris, tracker) -> None:
    project, frame, y = iris
    labels = pd.DataFrame({"request_id": frame["request_id"], "label": y.astype(float)})
    labels.loc[3, "label"] = np.nan
    labels.to_csv(project.root / "labels.csv", index=False)
    result = mlops_cli(project, "monitor", "labels", "iris", "labels.csv")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (f"labels.csv: line 5: label is NaN (request_id {frame['request_id'][3]!r}); "
            "no labels were added") in result.stderr
    assert tracker.store.predictions.label_files("iris") == []


@pytest.mark.parametrize(("request_id", "label", "problem"), [
    (None, 1, "row 2: request_id is missing"),
    ("  ", 1, "row 2: request_id is blank ('  ')"),
    ("ID", "", "row 2: label is empty ('')"),
    ("ID", " ", "row 2: label is empty (' ')"),
    ("ID", None, "row 2: label is missing (None)"),
    ("ID", float("nan"), "row 2: label is NaN"),
    ("ID", "NaN", "row 2: label is NaN ('NaN')"),
    ("ID", float("inf"), "row 2: label is inf, not a finite number"),
    ("ID", "-inf", "row 2: label is '-inf', not a finite number"),
    ("ID", 7, "row 2: label 7 is not one of the classes: iris:1 is a classifier of the "
              "classes 0, 1, 2"),
    ("ID", 1.5, "row 2: label 1.5 is not one of the classes"),
    ("ID", "setosa", "row 2: label 'setosa' is not one of the classes"),
    ("ID", [1], "row 2: label [1] is neither a number nor text"),
])
def test_a_bad_row_is_refused_by_name(iris, tracker, request_id, label, problem) -> None:
    project, frame, y = iris
    ids = list(frame["request_id"][:3])
    if request_id != "ID":
        ids[1] = request_id
    labels = pd.Series([int(y[0]), label, int(y[2])], dtype=object)  # None stays None
    with pytest.raises(InvalidInput) as refused:
        upload(project, tracker, "iris", ids, labels)
    assert str(refused.value).startswith(problem)
    assert str(refused.value).endswith("no labels were added")
    assert tracker.store.predictions.label_files("iris") == []


def test_every_bad_row_is_counted(iris, tracker) -> None:
    project, frame, y = iris
    labels = y.astype(object)
    for row in (4, 8, 20):
        labels[row] = 9
    with pytest.raises(InvalidInput, match=r"^row 5: label 9 .*; 2 more rows refused "
                                           r"\(row 9, row 21\); no labels were added$"):
        upload(project, tracker, "iris", frame["request_id"], labels)


def test_two_labels_for_one_request_in_one_file_are_refused(iris, tracker) -> None:
    project, frame, y = iris
    rid = frame["request_id"][0]
    with pytest.raises(InvalidInput, match=r"^row 3: request_id '.*' has another label on "
                                           r"row 1 \(0 and 2\): keep one"):
        upload(project, tracker, "iris", [rid, frame["request_id"][1], rid], [0, 0, 2])
    # The same label twice is one label.
    assert upload(project, tracker, "iris", [rid, rid], [0, 0]).added == 1


def test_unknown_request_ids_are_counted_and_kept(iris, tracker) -> None:
    project, frame, y = iris
    done = upload(project, tracker, "iris", [*frame["request_id"][:2], "later-1", "later-2"],
                  [int(y[0]), int(y[1]), 0, 1])
    assert (done.added, done.unknown, done.unknown_examples) == (4, 2, ("later-1", "later-2"))
    pd.DataFrame({"request_id": ["later-3"], "label": [2]}).to_csv(
        project.root / "late.csv", index=False)
    result = mlops_cli(project, "monitor", "labels", "iris", "late.csv")
    assert result.returncode == 0, result.stderr
    assert "1 request ids are not in the prediction log (yet), e.g. 'later-3'" in result.stdout


def test_a_corrected_label_wins_and_the_report_counts_it(iris, tracker) -> None:
    project, frame, y = iris
    wrong = y.copy()
    wrong[:5] = (y[:5] + 1) % 3
    upload(project, tracker, "iris", frame["request_id"], wrong)
    [before] = build_report(project, tracker.store, "iris").versions
    assert before.task == "classification" and set(before.quality) == {"accuracy", "f1"}
    assert before.labels_corrected == 0
    fixed = upload(project, tracker, "iris", frame["request_id"][:5], y[:5])
    assert (fixed.added, fixed.corrected) == (5, 5)
    [after] = build_report(project, tracker.store, "iris").versions
    assert after.labelled == 150 and after.labels_corrected == 5
    assert after.quality["accuracy"] == pytest.approx(before.quality["accuracy"] + 5 / 150)
    shown = mlops_cli(project, "monitor", "report", "iris")
    assert "quality (classification): accuracy" in shown.stdout
    assert "(150 labelled, 5 corrected by a later upload)" in shown.stdout
    # Sending the same labels again corrects nothing.
    assert upload(project, tracker, "iris", frame["request_id"][:5], y[:5]).corrected == 0


def test_the_issue_case_multiclass_with_a_nan_then_clean_labels(iris, tracker) -> None:
    """One NaN turned the report into `mae nan`; now it is refused, and the clean upload
    gives classification metrics."""
    project, frame, y = iris
    with pytest.raises(InvalidInput, match="label is NaN"):
        upload(project, tracker, "iris", frame["request_id"],
               np.where(np.arange(150) == 3, np.nan, y.astype(float)))
    upload(project, tracker, "iris", frame["request_id"], y.astype(float))
    [version] = build_report(project, tracker.store, "iris").versions
    assert set(version.quality) == {"accuracy", "f1"} and version.quality["accuracy"] > 0.9


def test_labels_stored_before_they_were_checked_are_skipped(iris, tracker) -> None:
    """A NaN label written by an older version is never a label, and a later upload for
    the same request wins."""
    project, frame, y = iris
    log = PredictionLog(project)
    legacy = pd.DataFrame({"request_id": frame["request_id"], "label": y.astype(float)})
    legacy.loc[3, "label"] = np.nan
    path = log._write_file("iris", "labels-", legacy)
    tracker.store.predictions.add_labels("iris", log.relative(path), len(legacy))
    [version] = build_report(project, tracker.store, "iris").versions
    assert version.labelled == 149 and set(version.quality) == {"accuracy", "f1"}
    upload(project, tracker, "iris", frame["request_id"][3:4], y[3:4])
    [version] = build_report(project, tracker.store, "iris").versions
    assert version.labelled == 150


def test_a_regressor_gets_regression_metrics_for_whole_number_labels(project,
                                                                     tracker) -> None:
    """Counts as labels looked like classes to the old guess; the model says regression."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(0, 1, 300), "b": rng.normal(0, 1, 300)})
    counts = np.clip(np.round(2 + X["a"] + rng.normal(0, 0.3, 300)), 0, None).astype(int)
    frame = log_model_and_predictions(project, tracker, LinearRegression().fit(X, counts), X,
                                      "visits")
    upload(project, tracker, "visits", frame["request_id"], counts)
    [version] = build_report(project, tracker.store, "visits").versions
    assert version.task == "regression" and set(version.quality) == {"mae", "rmse"}
    assert version.quality["mae"] < 0.5
    with pytest.raises(InvalidInput, match="label 'many' is not a number: visits:1 is a "
                                           "regression model"):
        upload(project, tracker, "visits", frame["request_id"][:1], ["many"])


def test_a_binary_classifier_of_classes_1_and_2_gets_calibration(project, tracker) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(0, 1, 500)})
    y = np.where(rng.uniform(0, 1, 500) < 1 / (1 + np.exp(-2 * X["a"])), 2, 1)
    frame = log_model_and_predictions(project, tracker,
                                      LogisticRegression().fit(X, y), X, "churn")
    upload(project, tracker, "churn", frame["request_id"], y)
    [version] = build_report(project, tracker.store, "churn").versions
    assert set(version.quality) == {"accuracy", "f1", "auc"} and version.quality["auc"] > 0.7
    assert version.calibration is not None and version.calibration.ece < 0.15


def test_the_task_is_read_from_the_model_file_when_no_profile_records_it(project,
                                                                          tracker) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True, as_frame=True)
    frame = log_model_and_predictions(project, tracker, DecisionTreeClassifier().fit(X, y), X,
                                      "tree", example=False)
    assert tracker.store.predictions.profile("tree", 1) is None
    with pytest.raises(InvalidInput, match="label 3 is not one of the classes"):
        upload(project, tracker, "tree", frame["request_id"][:1], [3])
    upload(project, tracker, "tree", frame["request_id"], y)
    [version] = build_report(project, tracker.store, "tree").versions
    assert version.task == "classification" and version.quality["accuracy"] == 1.0


def test_no_metrics_when_the_model_cannot_say_what_it_predicts(project, tracker) -> None:
    store = tracker.store
    store.artifacts.record("blake3:" + "3" * 64, 1)
    store.models.register("ghost", digest="blake3:" + "3" * 64, flavor="sklearn-skops",
                          run_id=None, signature=None, input_datasets=[])
    X = pd.DataFrame({"a": np.arange(20.0)})
    frame = prediction_frame(X, np.arange(20) % 2, version=1)
    PredictionLog(project).write(store, "ghost", frame, "batch")
    upload(project, tracker, "ghost", frame["request_id"], np.arange(20) % 2)
    [version] = build_report(project, store, "ghost").versions
    assert version.labelled == 20 and version.quality == {} and version.task is None
    assert "ghost:1 records no task and its model file could not be read" in \
        version.quality_note
    shown = mlops_cli(project, "monitor", "report", "ghost")
    assert "quality: none (20 labelled)" in shown.stdout


def test_request_ids_in_a_csv_stay_text(project, tracker) -> None:
    """'007' read as a number was 7, which matched no request."""
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": np.arange(3.0)})
    log_model_and_predictions(project, tracker, LinearRegression().fit(X, X["a"]), X, "ids",
                              request_ids=["007", "1e3", "12"])
    (project.root / "ids.csv").write_text("request_id,label\n007,0\n1e3,1\n12,2\n")
    result = mlops_cli(project, "monitor", "labels", "ids", "ids.csv")
    assert result.returncode == 0 and "not in the prediction log" not in result.stdout
    [version] = build_report(project, tracker.store, "ids").versions
    assert version.labelled == 3
