"""The dashboard's Panel-free pieces: what the pages compute before they draw."""

from __future__ import annotations

import pytest

from jupyter_mlops.config import MonitoringConfig
from jupyter_mlops.dashboard.monitoring_summary import (
    by_severity,
    cards,
    current_version,
    version_changes,
)
from jupyter_mlops.dashboard.pages.releases import approval_blocker, for_the_web
from jupyter_mlops.dashboard.runs_compare import parse_run_ids
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.monitoring.drift import DriftResult
from jupyter_mlops.monitoring.report import MonitorReport, TimeBucket, VersionReport
from jupyter_mlops.registry.identity import Identity
from jupyter_mlops.store.releases import ReleaseRequest


@pytest.mark.parametrize(("typed", "ids"), [
    ("10 12 14", [10, 12, 14]), ("10,12", [10, 12]), ("#3 #1", [3, 1]), ("5 5 6", [5, 6]),
])
def test_run_ids_are_read_as_typed(typed: str, ids: list[int]) -> None:
    assert parse_run_ids(typed) == ids


@pytest.mark.parametrize(("typed", "problem"), [
    ("12", "two or more"), ("1 x", "'x' is not a run id"), ("", "two or more"),
    ("1 2 3 4 5 6 7 8 9", "at most 8"), ("1 <b>", "'<b>' is not a run id"),
])
def test_bad_run_ids_get_one_clear_line(typed: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        parse_run_ids(typed)


def _drift(feature: str, test: str, statistic: float | None, threshold: float,
           drifted: bool) -> DriftResult:
    return DriftResult(feature, "numeric", test, statistic, threshold, drifted, 100, "")


def test_drift_is_sorted_drifted_first_then_by_how_far_past_the_threshold() -> None:
    results = (_drift("calm", "psi", 0.01, 0.2, False), _drift("far", "psi", 0.9, 0.2, True),
               _drift("near", "psi", 0.25, 0.2, True), _drift("few rows", "none", None, 0, False),
               _drift("ks", "ks", 0.3, 0.01, True))
    # PSI 0.9 is 4.5 thresholds, 0.25 is 1.25; a KS result ranks by its distance D
    # (its threshold is a p-value's): tests of one log's features are alike in practice.
    assert [d.feature for d in by_severity(results)] == ["far", "near", "ks", "calm",
                                                         "few rows"]


def _version(version: int, error_rate: float, p95: float, drift: tuple = (),
             quality: dict | None = None) -> VersionReport:
    return VersionReport(version=version, release=None, rows=100, errors=int(error_rate * 100),
                         error_rate=error_rate, latency_ms={"p50": 1, "p95": p95, "p99": p95},
                         drift=drift, labelled=10 if quality else 0, quality=quality or {},
                         calibration=None)


def _bucket(start: float, version: int) -> TimeBucket:
    return TimeBucket(start=start, rows=10, error_rate=0.0, latency_p95_ms=1.0, version=version)


def test_cards_judge_the_version_serving_at_the_end_against_the_thresholds() -> None:
    report = MonitorReport(
        name="churn", since=None, until=0, rows=200,
        versions=(_version(1, 0.5, 900), _version(2, 0.01, 20, (
            _drift("a", "psi", 0.9, 0.2, True), _drift("b", "psi", 0.0, 0.2, False)),
            {"accuracy": 0.8})),
        timeline=(_bucket(0, 1), _bucket(10, 1), _bucket(20, 2)))
    assert current_version(report).version == 2
    found = {c.label: (c.value, c.passed) for c in cards(report, MonitoringConfig(
        min_accuracy=0.9))}
    assert found == {"requests": ("200", None), "error rate": ("1.00%", True),
                     "latency p95": ("20.0 ms", True), "features drifting": ("1 of 2", False),
                     "accuracy": ("0.800", False)}
    assert [(c.at, c.version) for c in version_changes(report)] == [(20, 2)]


def _request(gates: list[dict]) -> ReleaseRequest:
    return ReleaseRequest(id=7, name="churn", version=3, alias="production", status="pending",
                          requester="bob", reason="r", evidence={"gates": gates},
                          created_at=0.0, decided_by=None, decided_at=None,
                          decision_reason=None, override_reason=None)


@pytest.mark.parametrize(("roles", "gates", "blocked"), [
    ({"reviewer"}, [{"gate": "acc >= 0.9", "passed": False}], True),
    ({"reviewer"}, [{"gate": "acc >= 0.9", "passed": True}], False),
    ({"admin", "reviewer"}, [{"gate": "acc >= 0.9", "passed": False}], False),
])
def test_only_admins_are_offered_to_approve_over_failing_gates(roles, gates, blocked) -> None:
    blocker = approval_blocker(_request(gates), Identity("alice", frozenset(roles)))
    assert (blocker is not None) == blocked
    if blocker:
        assert "only an admin" in blocker and "--" not in blocker


def test_refusals_lose_their_command_line_options_on_the_web() -> None:
    refusal = ("gates failed for churn:3: acc >= 0.9; an admin may override with a written "
               "reason (--override)")
    assert for_the_web(refusal) == ("gates failed for churn:3: acc >= 0.9; an admin may "
                                    "override with a written reason")


def test_work_off_the_event_loop_hands_on_what_it_raised() -> None:
    """Drift measured after the first paint: a failure reaches the page, never a thread's
    stderr alone (outside a server session the work runs at once)."""
    from jupyter_mlops.dashboard.pages.background import off_the_event_loop

    handed: list = []
    off_the_event_loop(lambda: 1 / 0, handed.append)
    off_the_event_loop(lambda: 42, handed.append)
    assert isinstance(handed[0], ZeroDivisionError) and handed[1] == 42


@pytest.mark.parametrize(("at", "span_ms"), [
    ([1_700_000_000.0], 3_600_000.0),  # a batch scoring job: every row at one instant
    ([1_700_000_000.0, 1_700_000_030.0], 3_600_000.0),
    ([1_700_000_000.0, 1_700_007_200.0], None),  # two hours of traffic: its own range
])
def test_traffic_logged_at_one_instant_is_drawn_on_an_hour_around_it(at, span_ms) -> None:
    from jupyter_mlops.dashboard import charts

    figure = charts.time_series("requests", at, [5] * len(at), y_label="requests",
                                versions=["m:1"] * len(at))
    if span_ms is None:
        assert type(figure.x_range).__name__ == "DataRange1d"  # fitted to the data
        return
    assert figure.x_range.end - figure.x_range.start == span_ms
    assert figure.x_range.start < at[0] * 1000 and at[-1] * 1000 < figure.x_range.end
