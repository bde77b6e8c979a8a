from __future__ import annotations

import pytest

from jupyter_mlops.errors import FilterSyntaxError
from jupyter_mlops.store import Store
from jupyter_mlops.store.filters import MAX_DEPTH, MAX_LENGTH, compile_filter

pytestmark = pytest.mark.both_backends


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
    ("started_at > '0001-01-01'", 13, "out of range"),
    ("ended_at < '9999-12-31T23:59:59-14:00'", 11, "out of range"),
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


@pytest.mark.parametrize(("expression", "position"), [
    ("(" * (MAX_DEPTH + 1) + "id = 1" + ")" * (MAX_DEPTH + 1), MAX_DEPTH),
    ("not " * (MAX_DEPTH + 1) + "id = 1", 4 * MAX_DEPTH),
    ("id = 1 and " + "(not " * 20 + "id = 1" + ")" * 20, 11 + 5 * 16),
])
def test_nesting_deeper_than_the_limit_points_at_the_first_token_too_deep(
        store_with_runs: Store, expression: str, position: int) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        store_with_runs.runs.search(expression)
    assert info.value.position == position
    assert f"nested more than {MAX_DEPTH} deep" in str(info.value)


def test_length_limit_is_inclusive(store_with_runs: Store) -> None:
    padded = "metrics.acc > 0.85" + " " * (MAX_LENGTH - len("metrics.acc > 0.85"))
    assert len(store_with_runs.runs.search(padded)) == 2
    with pytest.raises(FilterSyntaxError) as info:
        store_with_runs.runs.search(padded + " ")
    assert info.value.position == MAX_LENGTH and f"more than {MAX_LENGTH}" in str(info.value)


def test_a_long_expression_is_cut_around_the_caret() -> None:
    expression = "name = 'x' and " * 100 + "nonsense > 1"
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter(expression)
    _, shown, caret = str(info.value).split("\n")
    assert shown.startswith("  ...") and len(shown) < 100
    assert shown[caret.index("^"):].startswith("nonsense")
    assert "unknown field 'nonsense'" in str(info.value)


def test_control_characters_do_not_break_the_message_into_lines() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        compile_filter("metrics.acc >\n\n")
    assert str(info.value).count("\n") == 2
