from __future__ import annotations

import pytest

from jupyter_mlops.errors import FilterSyntaxError
from jupyter_mlops.store import Store


@pytest.mark.parametrize(("expression", "names"), [
    ("metrics.acc > 0.85", ["run-2", "run-1"]),
    ("metrics.acc >= 0.9 and params.C = '0.5'", ["run-1"]),
    ("params.C > 0.2", ["run-2", "run-1"]),
    ("params.C = '0.1' or tags.team = 'churn'", ["run-2", "run-1", "run-0"]),
    ("(params.C = '0.1' or params.C = '1.0') and status = 'finished'", ["run-0"]),
    ("not status = 'failed'", ["run-1", "run-0"]),
    ("name like 'run-%' AND metrics.acc < 0.85", ["run-0"]),
    ('tags.team != "churn"', ["run-0"]),
    ("metrics.`acc` = 0.9", ["run-1"]),
    ("metrics.missing > 0", []),
    ("started_at > '2000-01-01'", ["run-2", "run-1", "run-0"]),
    ("params.solver = 'lbfgs' and id >= 2", ["run-2", "run-1"]),
])
def test_filters_select_the_expected_runs(store_with_runs: Store, expression: str,
                                          names: list[str]) -> None:
    assert [r.name for r in store_with_runs.runs.search(expression)] == names


@pytest.mark.parametrize(("expression", "position", "problem"), [
    ("metrics.acc >", 13, "found the end"),
    ("metrics.acc > 'high'", 14, "metrics are numbers"),
    ("acc > 1", 0, "unknown field 'acc'"),
    ("metrics.acc > 1 and", 19, "found the end"),
    ("metrics.acc > 1; DROP TABLE runs", 15, "unexpected character ';'"),
    ("params.C = '0.5' OR 1=1", 20, "expected a field"),
    ("(metrics.acc > 1", 16, "expected ')'"),
    ("metrics.acc like 3", 17, "quoted pattern"),
    ("started_at > 'yesterday'", 13, "ISO date"),
    ("name = '<script>alert(1)</script>' )", 35, "unexpected ')'"),
])
def test_bad_filters_point_at_the_token(store_with_runs: Store, expression: str,
                                        position: int, problem: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        store_with_runs.runs.search(expression)
    assert info.value.position == position
    assert problem in str(info.value)


def test_hostile_values_are_only_ever_parameters(store_with_runs: Store) -> None:
    hostile = "x' OR '1'='1"
    assert store_with_runs.runs.search(f'name = "{hostile}"') == []
    assert store_with_runs.runs.search(r"name = 'a\'; DROP TABLE runs; --'") == []
    with pytest.raises(FilterSyntaxError):
        store_with_runs.runs.search("name = 'a''; DROP TABLE runs; --'")
    assert len(store_with_runs.runs.search()) == 3
