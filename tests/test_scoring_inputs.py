"""The numeric fast path of /predict (scoring.inputs): it takes exactly the bodies
the row-by-row contract passes unchanged, gives the model the same values, and
leaves every other body to the contract, which names the field."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jupyter_mlops.scoring.contract import Invalid, check_instances
from jupyter_mlops.scoring.inputs import numeric_input

FLOATS = (("a", "float64"), ("b", "float64"))
MIXED = (("a", "float64"), ("n", "int64"))
UNTYPED = (("a", None), ("b", None))
RNG = np.random.default_rng(0)
XY = pd.DataFrame(RNG.normal(size=(60, 2)), columns=["a", "b"])
LABELS = (XY["a"] > 0).astype(int)


def fitted(columns=("a", "b")):
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(XY[list(columns)], LABELS)


def both(body, columns):
    """What the fast path gives and what the contract gives, for one body."""
    fast = numeric_input(fitted(), columns)
    matrix = fast.matrix(json.loads(json.dumps(body)))
    try:
        instances = check_instances(json.loads(json.dumps(body)), columns)
    except Invalid as exc:
        return matrix, exc
    return matrix, pd.DataFrame(instances, columns=[name for name, _ in columns])


@pytest.mark.parametrize("columns", [FLOATS, UNTYPED])
@pytest.mark.parametrize("body", [
    {"instances": [{"a": 1.5, "b": -2.0}]},
    {"instances": [{"b": 3, "a": 1.5}, {"a": 0.0, "b": 1e300}]},  # an int, keys reordered
])
def test_fast_path_gives_the_values_the_contract_gives(body, columns):
    matrix, frame = both(body, columns)
    assert matrix is not None and matrix.dtype == np.float64
    assert np.array_equal(matrix, frame.to_numpy(dtype=np.float64))


@pytest.mark.parametrize("body", [
    {"instances": [{"a": 1.0}]},                            # missing
    {"instances": [{"a": 1.0, "b": 2.0, "c": 3.0}]},        # unknown
    {"instances": [{"a": 1.0, "c": 2.0}]},                  # unknown in place of one
    {"instances": [{"a": True, "b": 2.0}]},                 # a boolean is not a number
    {"instances": [{"a": "1.5", "b": 2.0}]},                # nor a string
    {"instances": [{"a": None, "b": 2.0}]},
    {"instances": [{"a": [1.0], "b": 2.0}]},
    {"instances": [{"a": 10**400, "b": 2.0}]},              # past float64
    {"instances": [1.0]},
    {"instances": []},
    {"instances": [{"a": 1.0, "b": 2.0}] * 1001},           # over MAX_ROWS
    {"instances": [{"a": 1.0, "b": 2.0}], "extra": 1},
    [{"a": 1.0, "b": 2.0}],
])
def test_fast_path_leaves_every_fault_to_the_contract(body):
    matrix, outcome = both(body, FLOATS)
    assert matrix is None
    if body != {"instances": [{"a": 10**400, "b": 2.0}]}:
        assert isinstance(outcome, Invalid)


@pytest.mark.parametrize("text", ['{"instances": [{"a": NaN, "b": 1.0}]}',
                                  '{"instances": [{"a": Infinity, "b": 1.0}]}'])
def test_fast_path_leaves_nan_and_infinity_to_the_contract(text):
    fast = numeric_input(fitted(), FLOATS)
    assert fast.matrix(json.loads(text)) is None
    with pytest.raises(Invalid, match="instances\\[0\\].a: expected a finite number"):
        check_instances(json.loads(text), FLOATS)


def test_an_integer_column_takes_only_floats_on_the_fast_path():
    fast = numeric_input(fitted(("a", "b")), (("a", "float64"), ("b", "int64")))
    assert fast.matrix({"instances": [{"a": 1.0, "b": 2.0}]}) is not None
    assert fast.matrix({"instances": [{"a": 1.0, "b": 2}]}) is None  # int64 stays int64


def test_no_fast_path_when_a_feature_is_text_or_boolean():
    assert numeric_input(fitted(), (("a", "float64"), ("b", "object"))) is None
    assert numeric_input(fitted(), (("a", "float64"), ("b", "bool"))) is None


def test_a_model_takes_the_matrix_only_when_its_fitted_columns_are_the_same_in_order():
    assert numeric_input(fitted(), FLOATS).takes_array
    assert not numeric_input(fitted(("b", "a")), FLOATS).takes_array  # fitted b, a
    by_name = make_pipeline(ColumnTransformer([("s", StandardScaler(), ["a", "b"])]),
                            LogisticRegression()).fit(XY, LABELS)
    assert not numeric_input(by_name, FLOATS).takes_array  # selects columns by name
    frame = numeric_input(fitted(("b", "a")), FLOATS).model_input(np.array([[1.0, 2.0]]))
    assert list(frame.columns) == ["a", "b"]


values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                   st.booleans(), st.none(), st.text(max_size=3))
instance = st.dictionaries(st.sampled_from(["a", "b", "c"]), values, max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.lists(instance, max_size=4))
def test_fast_path_takes_a_body_only_when_the_contract_passes_it_unchanged(instances):
    fast = numeric_input(fitted(), FLOATS)
    body = {"instances": instances}
    matrix = fast.matrix(json.loads(json.dumps(body)))
    try:
        checked = check_instances(json.loads(json.dumps(body)), FLOATS)
    except Invalid:
        assert matrix is None
        return
    if matrix is not None:
        expected = pd.DataFrame(checked, columns=["a", "b"]).to_numpy(dtype=np.float64)
        assert np.array_equal(matrix, expected)
