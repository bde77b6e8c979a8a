"""POST /api/v1/read with arguments of the wrong type: a 422 naming the argument and
the type it takes, never the database driver's error as a 500."""

from __future__ import annotations

import pytest

from ..team import team_server


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite")


@pytest.mark.parametrize("body, problem", [
    ({"call": "runs.get", "args": ["1"]}, "run_id must be int"),
    ({"call": "runs.get", "args": [None]}, "run_id must be int"),
    ({"call": "runs.get", "args": [True]}, "run_id must be int"),
    ({"call": "runs.get", "args": [2**70]}, "run_id must be int"),
    ({"call": "runs.search", "kwargs": {"limit": "x"}}, "limit must be int"),
    ({"call": "runs.search", "args": [["metrics.acc > 1"]]}, "expression must be str | None"),
    ({"call": "models.resolve", "args": [{"a": 1}]}, "ref must be str"),
    ({"call": "datasets.get", "args": [[1, 2]]}, "digest must be str"),
    ({"call": "audit.verify", "args": ["78"]}, "expected_head must be"),
    ({"call": "audit.verify", "args": [{"$tuple": [1]}]}, "expected_head must be"),
    ({"call": "releases.latest_approved", "kwargs": {"decided_before": "now"}},
     "decided_before must be float | None"),
    ({"call": "runs.get", "kwargs": {"$map": [[1, 2]]}}, "runs.get"),
    ({"call": "runs.get", "kwargs": {"$type": "Run", "fields": {}}}, "Run"),
    ({"call": "runs.get", "args": [{"$type": "MetricPoint", "fields": {
        "key": "a", "value": 1.0, "step": None, "timestamp": 1.0}}]}, "run_id must be int"),
])
def test_an_argument_of_the_wrong_type_is_a_422_naming_it(team, body, problem):
    answer = team.post("/api/v1/read", "reader", json=body)
    assert answer.status_code == 422, answer.text
    assert problem in answer.json()["error"]["message"]
    assert "Traceback" not in team.log_text()


def test_arguments_of_the_right_type_still_answer(team):
    for body in ({"call": "runs.search", "kwargs": {"limit": 10**12}},
                 {"call": "releases.latest_approved", "kwargs": {"decided_before": 5}},
                 {"call": "audit.verify", "args": [None]},
                 {"call": "runs.resolve", "args": [3]}):
        answer = team.post("/api/v1/read", "reader", json=body)
        assert answer.status_code in (200, 404), answer.text
