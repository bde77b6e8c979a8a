"""Drift against known answers, quality and calibration against hand-computed
values, the prediction log, reports and `mlops monitor`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jupyter_mlops.monitoring.drift import (
    DriftThresholds,
    categorical_drift,
    numeric_drift,
)
from jupyter_mlops.monitoring.predlog import PredictionLog, parse_window, prediction_frame
from jupyter_mlops.monitoring.profile import feature_profile
from jupyter_mlops.monitoring.quality import calibration, classification_quality
from jupyter_mlops.monitoring.report import build_report
from jupyter_mlops.store import Store

ALPHA = DriftThresholds().alpha
DRAWS = 200


@pytest.fixture(scope="module")
def normal_reference():
    return feature_profile(np.random.default_rng(1).normal(0, 1, 50_000))


@pytest.fixture(scope="module")
def categorical_reference():
    rng = np.random.default_rng(2)
    return feature_profile(pd.Series(rng.choice(["a", "b", "c"], 50_000, p=[0.5, 0.3, 0.2])))


@pytest.mark.parametrize(("rows", "shift", "test"), [(300, 0.5, "ks"), (5000, 0.5, "psi")])
def test_shifted_numeric_data_is_flagged(normal_reference, rows, shift, test) -> None:
    data = np.random.default_rng(3).normal(shift, 1, rows)
    result = numeric_drift("x", normal_reference, data)
    assert result.test == test and result.drifted, result


@pytest.mark.parametrize(("rows", "limit"), [(300, ALPHA), (5000, 0.0)])
def test_same_distribution_false_alarms_stay_below_the_stated_rate(normal_reference, rows,
                                                                   limit) -> None:
    rng = np.random.default_rng(4)
    alarms = sum(numeric_drift("x", normal_reference, rng.normal(0, 1, rows)).drifted
                 for _ in range(DRAWS))
    # The stated rate, plus three binomial standard deviations of slack for 200 draws.
    assert alarms / DRAWS <= limit + 3 * np.sqrt(max(limit, 1e-3) * (1 - limit) / DRAWS)


@pytest.mark.parametrize("rows", [300, 5000])
def test_categorical_drift(categorical_reference, rows) -> None:
    rng = np.random.default_rng(5)
    shifted = rng.choice(["a", "b", "c"], rows, p=[0.2, 0.3, 0.5])
    assert categorical_drift("c", categorical_reference, shifted).drifted
    alarms = sum(categorical_drift("c", categorical_reference,
                                   rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2])).drifted
                 for _ in range(DRAWS))
    assert alarms / DRAWS <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / DRAWS)


def test_too_few_rows_give_no_verdict(normal_reference) -> None:
    result = numeric_drift("x", normal_reference, [5.0] * 10)
    assert result.test == "none" and not result.drifted


def test_quality_and_calibration_match_hand_computed_values() -> None:
    labels = [1, 0, 1, 1]
    scores = [0.9, 0.2, 0.6, 0.4]
    quality = classification_quality(labels, [1, 0, 1, 0], scores)
    assert quality["accuracy"] == 0.75
    assert quality["f1"] == pytest.approx(0.8)  # precision 1, recall 2/3
    assert quality["auc"] == 1.0
    calib = calibration(labels, scores)
    assert calib.brier == pytest.approx((0.01 + 0.04 + 0.16 + 0.36) / 4)
    assert calib.ece == pytest.approx((0.1 + 0.2 + 0.4 + 0.6) / 4)
    filled = [b for b in calib.curve if b.count]
    assert [(b.mean_predicted, b.fraction_positive) for b in filled] == [
        (0.2, 0.0), (0.4, 1.0), (0.6, 1.0), (0.9, 1.0)]


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("1d", 86400), ("2w", 1209600)])
def test_windows(text, seconds) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-1d", "1 day; drop"])
def test_bad_windows(text) -> None:
    from jupyter_mlops.errors import InvalidInput

    with pytest.raises(InvalidInput):
        parse_window(text)


@pytest.fixture
def logged(project, tracker):
    """Version 1 of `m` with a reference profile, 2,000 logged predictions and labels."""
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 5000),
                              "c": rng.choice(["a", "b"], 5000)})
    store = tracker.store
    store.artifacts.record("blake3:" + "2" * 64, 1)
    store.models.register("m", digest="blake3:" + "2" * 64, flavor="sklearn-skops", run_id=None,
                          signature=None, input_datasets=[])
    from jupyter_mlops.monitoring.profile import build_profile

    store.predictions.save_profile("m", 1, build_profile(
        reference, rng.uniform(0, 1, 5000),
        {"kind": "classification", "output": "probability", "classes": [0, 1]}))
    live = pd.DataFrame({"x": rng.normal(0, 1, 2000), "c": rng.choice(["a", "b"], 2000)})
    probabilities = rng.uniform(0, 1, 2000)
    frame = prediction_frame(live, probabilities, version=1, latency_ms=rng.uniform(1, 5, 2000))
    log = PredictionLog(project)
    log.write(store, "m", frame, "batch")
    labels = pd.DataFrame({"request_id": frame["request_id"],
                           "label": (rng.uniform(0, 1, 2000) < probabilities).astype(int)})
    labels.to_csv(project.root / "labels.csv", index=False)
    return project, frame


def test_report_covers_traffic_drift_quality_and_calibration(logged, tracker) -> None:
    project, _ = logged
    PredictionLog(project).write_labels(tracker.store, "m",
                                        pd.read_csv(project.root / "labels.csv"))
    report = build_report(project, tracker.store, "m")
    [version] = report.versions
    assert version.rows == 2000 and version.errors == 0 and version.labelled == 2000
    assert 1 <= version.latency_ms["p50"] <= 5
    assert {d.feature for d in version.drift} == {"x", "c", "(prediction)"}
    assert not any(d.drifted for d in version.drift)
    assert version.calibration is not None and version.calibration.ece < 0.1  # calibrated
    assert report.ok


def mlops_cli(project, *args):
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          capture_output=True, text=True, cwd=project.root, timeout=300)


def test_monitor_cli_labels_report_and_check(logged, tracker) -> None:
    project, frame = logged
    added = mlops_cli(project, "monitor", "labels", "m", "labels.csv")
    assert added.returncode == 0 and "2000 labels" in added.stdout
    report = mlops_cli(project, "monitor", "report", "m", "--window", "1d")
    assert report.returncode == 0 and "version 1: 2000 rows" in report.stdout
    assert "calibration: brier" in report.stdout
    assert mlops_cli(project, "monitor", "check", "m").returncode == 0
    # Shifted inputs: the check fails and says which feature.
    rng = np.random.default_rng(7)
    shifted = pd.DataFrame({"x": rng.normal(2, 1, 2000), "c": rng.choice(["a", "b"], 2000)})
    PredictionLog(project).write(tracker.store, "m",
                                 prediction_frame(shifted, rng.uniform(0, 1, 2000), version=1),
                                 "batch")
    failing = mlops_cli(project, "monitor", "check", "m", "--last", "2000")
    assert failing.returncode == 1
    assert "FAIL m:1 drift x" in failing.stdout and "m:1 drift x" in failing.stderr
    assert "FAIL m:1 drift c" not in failing.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["monitor", "report", "nothing"], "no predictions logged"),
    (["monitor", "report", "m", "--window", "soon"], "should look like"),
    (["monitor", "labels", "m", "missing.csv"], "no file"),
    (["monitor", "report", "../../etc", "--window", "1d"], "refused"),
])
def test_monitor_cli_bad_input(logged, args, message) -> None:
    project, _ = logged
    result = mlops_cli(project, *args)
    assert result.returncode == 1 and message in result.stderr


def test_labels_without_the_columns_are_refused(logged) -> None:
    project, _ = logged
    (project.root / "bad.csv").write_text("id,y\n1,0\n")
    result = mlops_cli(project, "monitor", "labels", "m", "bad.csv")
    assert result.returncode == 1 and "request_id and label" in result.stderr
    assert Store(project.db_path).predictions.label_files("m") == []


def test_tied_values_are_not_mistaken_for_drift() -> None:
    rng = np.random.default_rng(8)
    reference = feature_profile(rng.integers(0, 6, 20_000).astype(float))
    alarms = sum(numeric_drift("count", reference, rng.integers(0, 6, 500).astype(float)).drifted
                 for _ in range(50))
    assert alarms <= 2
    assert numeric_drift("count", reference, rng.integers(1, 7, 500).astype(float)).drifted


def test_quality_and_calibration_over_time(logged, tracker) -> None:
    project, _ = logged
    PredictionLog(project).write_labels(tracker.store, "m",
                                        pd.read_csv(project.root / "labels.csv"))
    report = build_report(project, tracker.store, "m", buckets=4)
    labelled = [b for b in report.timeline if b.labelled]
    assert sum(b.labelled for b in labelled) == 2000
    assert all(0.4 < b.accuracy < 0.9 and 0.1 < b.brier < 0.25 for b in labelled)


def test_a_numeric_feature_now_logged_as_text_is_drift_not_a_crash(normal_reference,
                                                                   project) -> None:
    """Upstream started sending the feature as strings: `mlops monitor check` used to die
    on "could not convert string to float"; the change of type is the drift."""
    values = pd.Series(["1.5", "oops", None, "2"] * 50, dtype="string[pyarrow]")
    result = numeric_drift("x", normal_reference, values)
    assert (result.test, result.drifted, result.statistic) == ("type", True, 0.25)
    assert result.detail == "50 of 200 values are not numbers (e.g. 'oops'); the reference's were"
    numbers = numeric_drift("x", normal_reference, pd.Series(["0.1", "-0.3"] * 100))
    assert numbers.test == "ks"  # text that holds numbers is read as numbers

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=200)})
    from jupyter_mlops.monitoring.profile import build_profile

    with Store(project.db_path) as store:
        store.predictions.save_profile("m", 1, build_profile(reference, rng.uniform(size=200)))
        PredictionLog(project).write(store, "m", prediction_frame(
            pd.DataFrame({"a": ["oops"] * 200}), rng.uniform(size=200), version=1), "service")
    done = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "monitor", "check",
                           "m"], capture_output=True, text=True, cwd=project.root)
    assert done.returncode == 1, done.stderr
    assert "FAIL m:1 drift a: type: 200 of 200 values are not numbers" in done.stdout
    assert "Traceback" not in done.stderr
