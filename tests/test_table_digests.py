"""Content digests of in-memory tables (`table_digests.digest_table`).

Property-based (hypothesis, with its pandas and numpy strategies): the same
content built two ways gives one digest, one changed value, name, dtype or
order gives another, and a new process with another hash seed agrees. Then a
table of explicit cases for each pandas dtype, numpy, pyarrow and polars, and
the digests recorded by the first version (`hashing.digest_dataframe`),
pinned so that previously logged DataFrames keep their digest.
"""

from __future__ import annotations

import datetime
import enum
import os
import pickle
import subprocess
import sys
import tempfile
import zoneinfo
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra import pandas as hpd

import jupyter_mlops as mlops
from jupyter_mlops.datasets import describe_table, is_dataframe, is_table
from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.table_digests import digest_table, table_kind

ROOT = Path(__file__).parent.parent
SOME = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ------------------------------------------------------------------

python_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=4)
    | st.decimals(places=2, allow_nan=False)
    | st.datetimes()
    | st.dates()
    | st.frozensets(st.text(max_size=3), max_size=3),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=5,
)
BASE_COLUMNS = [
    hpd.column("f", dtype=float),
    hpd.column("i", dtype="int64"),
    hpd.column("b", dtype=bool),
    hpd.column("t", dtype="datetime64[ns]"),
    hpd.column("d", dtype="timedelta64[ns]"),
    hpd.column("s", elements=st.none() | st.text(max_size=4), dtype=object),
    hpd.column("o", elements=python_values, dtype=object),
]
row_indexes = st.one_of(
    hpd.range_indexes(max_size=6),
    hpd.indexes(elements=st.text(max_size=3), max_size=6, unique=True),
    hpd.indexes(dtype="datetime64[ns]", max_size=6, unique=True),
)
base_frames = hpd.data_frames(BASE_COLUMNS, index=row_indexes)


def enrich(df: pd.DataFrame) -> pd.DataFrame:
    """The base frame plus extension dtypes derived from its columns."""
    out = df.copy()
    out["cat"] = pd.Categorical(df["s"])
    out["n"] = pd.Series(df["i"], dtype="Int64").mask(df["b"])
    out["tz"] = df["t"].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    out["str"] = df["s"].astype("str")
    out["per"] = df["t"].dt.to_period("D")
    out["arrow"] = pd.Series(df["i"], dtype="int64[pyarrow]")
    return out


rich_frames = base_frames.map(enrich)
arrays = hnp.arrays(
    hnp.scalar_dtypes()
    | hnp.integer_dtypes(endianness=">")
    | hnp.array_dtypes(subtype_strategy=hnp.scalar_dtypes(), max_size=3),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)


def different(value: object, kind: str) -> object:
    """A value of the same kind that differs from `value`."""
    if kind == "f":
        return 0.5 if not value == 0.5 else 0.25
    if kind == "i":
        return int(value) ^ 1
    if kind == "b":
        return not value
    if kind == "t":
        first = np.datetime64("2000-01-01", "ns")
        return first if not value == first else first + np.timedelta64(1, "ns")
    if kind == "d":
        first = np.timedelta64(1, "s")
        return first if not value == first else first * 2
    if kind == "s":
        return value + "x" if isinstance(value, str) else "x"
    return ["changed", value]


# -- properties ------------------------------------------------------------------


@SOME
@given(rich_frames)
def test_the_same_content_built_other_ways_has_the_same_digest(df: pd.DataFrame) -> None:
    digest = digest_table(df)
    assert digest_table(df.copy(deep=True)) == digest
    assert digest_table(pickle.loads(pickle.dumps(df))) == digest
    rebuilt = pd.DataFrame({name: df[name].copy() for name in df.columns}, index=df.index.copy())
    assert digest_table(rebuilt) == digest
    half = len(df) // 2
    assert digest_table(pd.concat([df.iloc[:half], df.iloc[half:]])) == digest
    assert digest_table(df.iloc[::-1].iloc[::-1]) == digest  # an int64 index, not a range
    assert digest_table(df[list(df.columns)]) == digest


@SOME
@given(base_frames, st.data())
def test_one_changed_value_changes_the_digest(df: pd.DataFrame, data) -> None:
    assume(len(df) > 0)
    row = data.draw(st.integers(0, len(df) - 1), label="row")
    name = data.draw(st.sampled_from(list(df.columns)), label="column")
    values = df[name].to_numpy(copy=True)
    values[row] = different(values[row], name)
    changed = df.copy()
    changed[name] = pd.Series(values, index=df.index, dtype=df[name].dtype)
    assert digest_table(changed) != digest_table(df)


@SOME
@given(rich_frames, st.data())
def test_a_changed_name_dtype_or_order_changes_the_digest(df: pd.DataFrame, data) -> None:
    digest = digest_table(df)
    name = data.draw(st.sampled_from(list(df.columns)), label="column")
    assert digest_table(df.rename(columns={name: name + "_"})) != digest
    assert digest_table(df.rename(columns={name: 1})) != digest
    assert digest_table(df.rename_axis("rows")) != digest
    conversions = {
        "f": "complex128",
        "i": "float64",
        "b": "int8",
        "t": "datetime64[s]",
        "d": "timedelta64[ms]",
        "s": "str",
        "n": "Float64",
        "str": "object",
    }
    if name in conversions:
        assert digest_table(df.astype({name: conversions[name]})) != digest
    first, second = data.draw(
        st.lists(st.sampled_from(list(df.columns)), min_size=2, max_size=2, unique=True),
        label="swapped columns",
    )
    order = list(df.columns)
    i, j = order.index(first), order.index(second)
    order[i], order[j] = order[j], order[i]
    assert digest_table(df[order]) != digest
    if len(df) > 1:
        i, j = data.draw(
            st.lists(st.integers(0, len(df) - 1), min_size=2, max_size=2, unique=True),
            label="swapped rows",
        )
        rows = list(range(len(df)))
        rows[i], rows[j] = rows[j], rows[i]
        assert digest_table(df.iloc[rows]) != digest  # the index labels move too
        unindexed = df.reset_index(drop=True)
        # Rows that differ as one-row frames (value changes are tested above) change
        # the whole frame's digest when swapped.
        row_i, row_j = (unindexed.iloc[[k]].reset_index(drop=True) for k in (i, j))
        assume(digest_table(row_i) != digest_table(row_j))
        assert digest_table(unindexed.iloc[rows].reset_index(drop=True)) != digest_table(unindexed)


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(rich_frames, min_size=1, max_size=4), st.lists(arrays, max_size=4))
def test_a_new_process_with_another_hash_seed_agrees(frames, numpy_arrays) -> None:
    tables = [*frames, *numpy_arrays, *(f["s"] for f in frames)]
    expected = [digest_table(table) for table in tables]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tables.pkl"
        path.write_bytes(pickle.dumps(tables))
        computed = _in_new_process(
            "import pickle, sys\n"
            "from jupyter_mlops.table_digests import digest_table\n"
            f"tables = pickle.loads(open({str(path)!r}, 'rb').read())\n"
            "print('\\n'.join(digest_table(t) for t in tables))\n"
        )
    assert computed.split() == expected


@SOME
@given(arrays, st.data())
def test_numpy_arrays_by_content(array: np.ndarray, data) -> None:
    digest = digest_table(array)
    assert digest_table(array.copy()) == digest
    assert digest_table(array.copy(order="F")) == digest  # layout is not content
    if array.dtype.names is None:
        swapped = array.astype(array.dtype.newbyteorder())
        assert digest_table(swapped) == digest  # nor byte order
    assume(array.size > 0 and array.dtype.names is None)
    position = data.draw(st.integers(0, array.size - 1), label="position")
    changed = array.copy().reshape(-1)
    kind = array.dtype.kind
    if kind in "fc":
        changed[position] = 0.5 if not changed[position] == 0.5 else 0.25
    elif kind == "b":
        changed[position] = not changed[position]
    else:
        changed.view(f"u{array.dtype.itemsize}")[position] ^= 1
    assert digest_table(changed.reshape(array.shape)) != digest
    if array.ndim and array.size > 1:
        assert digest_table(array.reshape(-1)) != digest or array.ndim == 1


# -- every pandas dtype ----------------------------------------------------------


def utc_instants(unit: str = "ns") -> pd.Series:
    return pd.Series(
        pd.to_datetime(["2024-03-31 00:30", None, "2024-10-27 01:30"], utc=True)
    ).dt.as_unit(unit)


DIFFERENT = {
    "datetime unit": (
        pd.Series(np.array(["2024-01-01"], dtype="datetime64[s]")),
        pd.Series(np.array(["2024-01-01"], dtype="datetime64[ms]")),
    ),
    "datetime value": (
        pd.Series(np.array(["2024-01-01", "NaT"], dtype="datetime64[us]")),
        pd.Series(np.array(["2024-01-02", "NaT"], dtype="datetime64[us]")),
    ),
    "timezone": (utc_instants(), utc_instants().dt.tz_convert("Europe/Paris")),
    "timezone unit": (utc_instants("us"), utc_instants("ns")),
    "timedelta": (
        pd.Series(pd.to_timedelta([1, None], unit="D")),
        pd.Series(pd.to_timedelta([2, None], unit="D")),
    ),
    "period freq": (
        pd.Series(pd.period_range("2024-01", periods=2, freq="M")),
        pd.Series(pd.period_range("2024-01", periods=2, freq="D")),
    ),
    "period value": (
        pd.Series(pd.period_range("2024-01", periods=2, freq="M")),
        pd.Series(pd.period_range("2024-02", periods=2, freq="M")),
    ),
    "interval closed": (
        pd.Series(pd.interval_range(0, 2, closed="right")),
        pd.Series(pd.interval_range(0, 2, closed="left")),
    ),
    "interval value": (
        pd.Series(pd.arrays.IntervalArray.from_breaks([0, 1, 2])),
        pd.Series(pd.arrays.IntervalArray.from_breaks([0, 1, 3])),
    ),
    "categorical ordered": (
        pd.Series(pd.Categorical(["a", "b"], ordered=False)),
        pd.Series(pd.Categorical(["a", "b"], ordered=True)),
    ),
    "categories order": (
        pd.Series(pd.Categorical(["a", "b"], categories=["a", "b"])),
        pd.Series(pd.Categorical(["a", "b"], categories=["b", "a"])),
    ),
    "unused category": (
        pd.Series(pd.Categorical(["a"], categories=["a"])),
        pd.Series(pd.Categorical(["a"], categories=["a", "z"])),
    ),
    "categorical code": (
        pd.Series(pd.Categorical([1, 2, None])),
        pd.Series(pd.Categorical([2, 1, None])),
    ),
    "categorical missing": (
        pd.Series(pd.Categorical(["a", None], categories=["a", "b"])),
        pd.Series(pd.Categorical(["a", "a"], categories=["a", "b"])),
    ),
    "Int64 NA": (pd.Series([1, None], dtype="Int64"), pd.Series([1, 0], dtype="Int64")),
    "Float64 NA": (pd.Series([1.5, None], dtype="Float64"), pd.Series([1.5, 0], dtype="Float64")),
    "boolean NA": (
        pd.Series([True, None], dtype="boolean"),
        pd.Series([True, False], dtype="boolean"),
    ),
    "string NA": (pd.Series(["a", None], dtype="string"), pd.Series(["a", ""], dtype="string")),
    "Int64 vs int64": (pd.Series([1, 2], dtype="Int64"), pd.Series([1, 2], dtype="int64")),
    "arrow null": (
        pd.Series([1, None], dtype="int64[pyarrow]"),
        pd.Series([1, 0], dtype="int64[pyarrow]"),
    ),
    "arrow list": (
        pd.Series([[1, 2], [3]], dtype=pd.ArrowDtype(pa.list_(pa.int64()))),
        pd.Series([[1], [2, 3]], dtype=pd.ArrowDtype(pa.list_(pa.int64()))),
    ),
    "arrow struct": (
        pd.Series([{"a": 1}], dtype=pd.ArrowDtype(pa.struct([("a", pa.int64())]))),
        pd.Series([{"a": 2}], dtype=pd.ArrowDtype(pa.struct([("a", pa.int64())]))),
    ),
    "arrow vs numpy": (pd.Series([1, 2], dtype="int64[pyarrow]"), pd.Series([1, 2])),
    "str vs bytes": (pd.Series(["a"], dtype=object), pd.Series([b"a"], dtype=object)),
    "int vs float": (pd.Series([1], dtype=object), pd.Series([1.0], dtype=object)),
    "int vs bool": (pd.Series([1], dtype=object), pd.Series([True], dtype=object)),
    "int vs str": (pd.Series([1], dtype=object), pd.Series(["1"], dtype=object)),
    "None vs NaN": (pd.Series(["a", None], dtype=object), pd.Series(["a", np.nan], dtype=object)),
    "NaN vs NA": (pd.Series(["a", np.nan], dtype=object), pd.Series(["a", pd.NA], dtype=object)),
    "None vs NaT": (pd.Series([1, None], dtype=object), pd.Series([1, pd.NaT], dtype=object)),
    "list vs tuple": (pd.Series([[1, 2]], dtype=object), pd.Series([(1, 2)], dtype=object)),
    "nested list": (pd.Series([[1, [2, 3]]], dtype=object), pd.Series([[1, [2], 3]], dtype=object)),
    "list split": (pd.Series([["ab", "c"]], dtype=object), pd.Series([["a", "bc"]], dtype=object)),
    "dict value": (pd.Series([{"a": 1}], dtype=object), pd.Series([{"a": 2}], dtype=object)),
    "dict key": (pd.Series([{"a": 1}], dtype=object), pd.Series([{"b": 1}], dtype=object)),
    "Decimal": (
        pd.Series([Decimal("1.5")], dtype=object),
        pd.Series([Decimal("1.6")], dtype=object),
    ),
    "Decimal exponent": (
        pd.Series([Decimal("1.0")], dtype=object),
        pd.Series([Decimal("1.00")], dtype=object),
    ),
    "bytes": (pd.Series([b"\x00"], dtype=object), pd.Series([b"\x00\x00"], dtype=object)),
    "datetime objects": (
        pd.Series([datetime.datetime(2024, 1, 1)], dtype=object),
        pd.Series([datetime.date(2024, 1, 1)], dtype=object),
    ),
    "aware datetime": (
        pd.Series([datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)], dtype=object),
        pd.Series(
            [datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/London"))], dtype=object
        ),
    ),
    "big int": (pd.Series([2**70], dtype=object), pd.Series([2**70 + 1], dtype=object)),
    "array in a cell": (
        pd.Series([np.array([1, 2]), None], dtype=object),
        pd.Series([np.array([[1, 2]]), None], dtype=object),
    ),
    "table in a cell": (
        pd.Series([pa.array(["a", None]), pd.DataFrame({"x": [1]})], dtype=object),
        pd.Series([pa.array(["a", ""]), pd.DataFrame({"x": [1]})], dtype=object),
    ),
    "negative zero": (pd.Series([0.0]), pd.Series([-0.0])),
    "sparse fill": (
        pd.Series(pd.arrays.SparseArray([0, 1], fill_value=0)),
        pd.Series(pd.arrays.SparseArray([0, 1], fill_value=1)),
    ),
    "series name": (pd.Series([1], name="a"), pd.Series([1], name="b")),
    "series name type": (pd.Series([1], name=1), pd.Series([1], name="1")),
}


@pytest.mark.parametrize("case", list(DIFFERENT))
def test_each_dtype_is_digested_and_one_difference_shows(case: str) -> None:
    first, second = DIFFERENT[case]
    assert digest_table(first) != digest_table(second)
    for series in (first, second):
        frame = series.to_frame("x")
        assert digest_table(pickle.loads(pickle.dumps(frame))) == digest_table(frame)
        assert digest_table(frame.copy(deep=True)) == digest_table(frame)
        assert digest_table(series.copy(deep=True)) == digest_table(series)
    if not case.startswith("series name"):
        assert digest_table(first.to_frame("x")) != digest_table(second.to_frame("x"))


SAME = {
    "every NaN": (
        pd.Series([np.nan, -np.nan, float("nan")]),
        pd.Series(
            np.array(
                [0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001], dtype=np.uint64
            ).view(np.float64)
        ),
    ),
    "NaN in objects": (
        pd.Series([float("nan")], dtype=object),
        pd.Series([-float("nan")], dtype=object),
    ),
    "dict insertion order": (
        pd.Series([{"a": 1, "b": [1, 2]}], dtype=object),
        pd.Series([{"b": [1, 2], "a": 1}], dtype=object),
    ),
    "set order": (
        pd.Series([{"x", "y", "z"}], dtype=object),
        pd.Series([{"z", "y", "x"}], dtype=object),
    ),
    "timezone object": (
        utc_instants().dt.tz_convert(datetime.UTC),
        utc_instants().dt.tz_convert(zoneinfo.ZoneInfo("UTC")),
    ),
    "string storage": (
        pd.Series(["a", None], dtype="string[python]"),
        pd.Series(["a", None], dtype="string[pyarrow]"),
    ),
    "str subclass": (
        pd.Series([enum.StrEnum("Colour", ["RED"]).RED, 1], dtype=object),
        pd.Series(["red", 1], dtype=object),
    ),
    "numpy scalars": (
        pd.Series([np.int64(3), np.float32(0.5), np.bool_(True)], dtype=object),
        pd.Series([3, 0.5, True], dtype=object),
    ),
}


@pytest.mark.parametrize("case", list(SAME))
def test_representations_of_the_same_content_agree(case: str) -> None:
    first, second = SAME[case]
    assert digest_table(first) == digest_table(second)


def test_multiindex_on_rows_and_columns() -> None:
    rows = pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["key", "n"])
    columns = pd.MultiIndex.from_tuples([("x", 1), ("x", 2)], names=["name", "pos"])
    df = pd.DataFrame(np.arange(8).reshape(4, 2), index=rows, columns=columns)
    digest = digest_table(df)
    assert digest_table(pickle.loads(pickle.dumps(df))) == digest
    assert digest_table(df.rename_axis(index=["key", "m"])) != digest
    assert digest_table(df.rename_axis(columns=["name", "p"])) != digest
    assert digest_table(df.rename(index={"b": "c"})) != digest
    assert digest_table(df.rename(columns={"x": "y"}, level=0)) != digest
    assert digest_table(df.swaplevel(axis=0)) != digest
    flat = df.copy()
    flat.columns = ["('x', 1)", "('x', 2)"]
    assert digest_table(flat.set_axis(rows)) != digest  # a tuple is not its text
    assert digest_table(df.reset_index()) != digest


def test_column_names_carry_their_type() -> None:
    digests = {
        digest_table(pd.DataFrame({name: [1]}))
        for name in (1, "1", 1.0, True, (1,), None, pd.Timestamp("2024-01-01"), b"1")
    }
    assert len(digests) == 8
    assert digest_table(pd.DataFrame({"a": [1], "b": [2]})) != digest_table(
        pd.DataFrame({"ab": [1], "": [2]})
    )


def test_a_range_index_and_the_same_int64_index_agree() -> None:
    df = pd.DataFrame({"v": [1.0, 2.0, 3.0]})
    assert digest_table(df.set_axis(pd.Index([0, 1, 2]))) == digest_table(df)
    assert digest_table(df.set_axis(pd.RangeIndex(0, 4, 1)[:3])) == digest_table(df)
    assert digest_table(df.set_axis(pd.Index([0, 1, 3]))) != digest_table(df)
    assert digest_table(df.set_axis(pd.Index([0, 1, 2], dtype="int32"))) != digest_table(df)
    assert digest_table(df.iloc[:0]) == digest_table(df.iloc[:0].set_axis(pd.Index([], "int64")))


def test_object_values_with_no_canonical_encoding_are_refused_by_name() -> None:
    class Point:
        pass

    with pytest.raises(InvalidInput, match=r"column 'where'.*test_table_digests.*Point"):
        digest_table(pd.DataFrame({"ok": [1], "where": [[1, Point()]]}))
    loop: list = []
    loop.append(loop)
    with pytest.raises(InvalidInput, match="nested more than 100 levels"):
        digest_table(pd.DataFrame({"loop": [loop]}))
    with pytest.raises(InvalidInput, match="cannot digest a value of type int"):
        digest_table(42)
    with pytest.raises(InvalidInput, match="masked array"):
        digest_table(np.ma.masked_array([1, 2], mask=[0, 1]))
    with pytest.raises(InvalidInput, match="name of column 0"):
        digest_table(pd.DataFrame({Point(): [1]}))


PINNED_V1 = {
    "numbers": "blake3:90fa23310df114def31d51392c2d210c21bca7316b54f98ab52946a62845095c",
    "object strings": "blake3:77ccf4c1d05c87cd8b6192f45891bcd999424f9580ac96c71c2d7e99580881c5",
    "string dtype": "blake3:f1e616b6c88972a2cdcc4e16ecbcf1e4cfb4edfd910fc9c7ad45dcb94093a8c9",
    "nullable": "blake3:983423176b29ee80a573430ef2b10bdd9305b255220479ab185931e69af52d58",
    "string index": "blake3:15612f6dbe661f202dc64ee6a774cdb1ac46a001a146e190590487b6707c0e1b",
    "float index": "blake3:67b60dc5df33448959d2fc586bcb89a969be3184d1c5588821542866d6e488dc",
    "empty": "blake3:dc284667be4a149fa7dc0049e7df138dd014f9f1e477411f7787f0f5d5d95e0e",
}


def v1_frames() -> dict[str, pd.DataFrame]:
    return {
        "numbers": pd.DataFrame(
            {
                "f": np.array([0.5, np.nan, -1.25]),
                "i": np.array([1, 2, 3], dtype=np.int64),
                "u": np.array([1, 2, 3], dtype=np.uint8),
                "b": np.array([True, False, True]),
                "c": np.array([1 + 2j, 0j, -1j]),
            }
        ),
        "object strings": pd.DataFrame({"o": pd.Series(["x", None, "zz"], dtype=object)}),
        "string dtype": pd.DataFrame({"s": pd.array(["p", None, "rr"], dtype="string")}),
        "nullable": pd.DataFrame(
            {
                "n": pd.array([1, None, 3], dtype="Int64"),
                "x": pd.array([0.5, None, 2.0], dtype="Float64"),
                "b": pd.array([True, None, False], dtype="boolean"),
                "m": pd.array([7, 8, 9], dtype="UInt16"),
            }
        ),
        "string index": pd.DataFrame(
            {"v": np.array([1.0, 2.0])}, index=pd.Index(["a", "b"], dtype=object)
        ),
        "float index": pd.DataFrame(
            {"v": np.array([1, 2], dtype=np.int64)}, index=pd.Index([0.5, 1.5])
        ),
        "empty": pd.DataFrame(),
    }


@pytest.mark.parametrize("case", list(PINNED_V1))
def test_numeric_and_string_frames_keep_the_first_versions_digest(case: str) -> None:
    """Values computed with hashing.digest_dataframe as first released (a92e1ac)."""
    assert digest_table(v1_frames()[case]) == PINNED_V1[case]


@pytest.mark.skipif(int(pd.__version__.split(".")[0]) < 3, reason="the str dtype is pandas 3's")
def test_a_str_column_keeps_the_first_versions_digest() -> None:
    df = pd.DataFrame({"s": pd.Series(["a", None], dtype="str")})
    assert (
        digest_table(df)
        == "blake3:dc0dff47276856685493e3b1acdcdbe139832c35d7ec36fa85f1ca86ad0ec60d"
    )


# -- pyarrow ---------------------------------------------------------------------


def test_arrow_tables_by_content_not_by_chunks() -> None:
    table = pa.table(
        {
            "i": pa.array([1, None, 3]),
            "s": pa.array(["a", None, "ccc"]),
            "l": pa.array([[1], None, [2, 3]]),
            "m": pa.array([[("k", 1)], None, []], type=pa.map_(pa.string(), pa.int64())),
            "st": pa.array([{"a": 1}, None, {"a": None}]),
            "d": pa.array(["x", "y", "x"]).dictionary_encode(),
            "dec": pa.array([Decimal("1.50"), None, Decimal("0")], type=pa.decimal128(6, 2)),
            "ts": pa.array([0, None, 5], type=pa.timestamp("us", tz="UTC")),
        }
    )
    digest = digest_table(table)
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1, 2)])
    assert chunked.column("i").num_chunks == 2 and digest_table(chunked) == digest
    assert digest_table(table.to_batches()[0]) == digest
    assert digest_table(table.rename_columns(["j", *table.column_names[1:]])) != digest
    assert digest_table(table.cast(table.schema.set(0, pa.field("i", pa.int32())))) != digest
    changed = table.set_column(1, "s", pa.array(["a", None, "ccd"]))
    assert digest_table(changed) != digest
    assert digest_table(table.column("s")) == digest_table(pa.chunked_array([["a"], [None, "ccc"]]))
    assert digest_table(pa.array(["a", None])) != digest_table(pa.array(["a", ""]))
    assert digest_table(pa.array([[1, 2], [3]])) != digest_table(pa.array([[1], [2, 3]]))
    sliced = pa.array([[9], [1], None, [2, 3]]).slice(1)
    assert digest_table(sliced) == digest_table(pa.array([[1], None, [2, 3]]))
    # Whatever Arrow keeps under a null (bytes, a number) is not content.
    validity = pa.array([True, False, True]).buffers()[1]
    words = pa.array(["ab", "cd", "e"])
    assert digest_table(
        pa.Array.from_buffers(pa.string(), 3, [validity, *words.buffers()[1:]])
    ) == digest_table(pa.array(["ab", None, "e"]))
    numbers = pa.array([1, 5, 7])
    assert digest_table(
        pa.Array.from_buffers(pa.int64(), 3, [validity, numbers.buffers()[1]])
    ) == digest_table(pa.array([1, None, 7]))
    with pytest.raises(InvalidInput, match="Arrow type sparse_union"):
        digest_table(
            pa.UnionArray.from_sparse(
                pa.array([0, 1], type=pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])]
            )
        )


# -- polars ----------------------------------------------------------------------


def test_polars_frames_and_series() -> None:
    pl = pytest.importorskip("polars")
    df = pl.DataFrame(
        {
            "i": [1, None, 3],
            "f": [0.5, float("nan"), None],
            "s": ["a", None, "ccc"],
            "c": pl.Series(["u", "v", "u"], dtype=pl.Categorical),
            "e": pl.Series(["u", "v", "u"], dtype=pl.Enum(["u", "v"])),
            "t": pl.Series(
                [datetime.datetime(2024, 1, 1), None, datetime.datetime(2024, 1, 2)]
            ).dt.replace_time_zone("Europe/Paris"),
            "d": pl.Series([datetime.timedelta(1), None, datetime.timedelta(0)]),
            "day": pl.Series([datetime.date(2024, 1, 1), None, datetime.date(2024, 1, 3)]),
            "l": [[1], None, [2, 3]],
            "st": [{"a": 1}, None, {"a": 2}],
            "dec": pl.Series([Decimal("1.5"), None, Decimal("2")], dtype=pl.Decimal(6, 2)),
            "b": [b"x", None, b""],
            "n": [None, None, None],
        }
    )
    digest = digest_table(df)
    rebuilt = pl.concat([df.slice(0, 1), df.slice(1, 2)], rechunk=False)
    assert digest_table(rebuilt) == digest
    assert digest_table(pickle.loads(pickle.dumps(df))) == digest
    assert digest_table(df.rename({"i": "j"})) != digest
    assert digest_table(df.with_columns(pl.col("i").cast(pl.Int32))) != digest
    assert digest_table(df.with_columns(pl.col("t").dt.convert_time_zone("UTC"))) != digest
    assert digest_table(df.select(reversed(df.columns))) != digest
    assert digest_table(df.reverse()) != digest
    assert digest_table(df.with_columns(pl.col("s").fill_null(""))) != digest
    assert digest_table(df.with_columns(pl.col("f").fill_nan(0.0))) != digest
    assert digest_table(df["s"]) == digest_table(rebuilt["s"])
    assert digest_table(df["s"]) != digest_table(df["s"].alias("z"))
    version = describe_table(df)
    assert version.rows == 3 and version.schema["i"] == "Int64" and version.size > 0


def _in_new_process(code: str, **env: str) -> str:
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": seed, **env},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_digesting_imports_only_the_tables_own_library() -> None:
    out = _in_new_process(
        "import sys\n"
        "import numpy as np\n"
        "from jupyter_mlops.datasets import describe_table\n"
        "describe_table(np.arange(6).reshape(2, 3))\n"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'polars') if m in sys.modules))\n"
        "import pandas as pd\n"
        "describe_table(pd.DataFrame({'t': pd.to_datetime(['2024-01-01']), 'o': [[1]]}))\n"
        "print('polars' in sys.modules)\n"
    )
    assert out.split("\n")[:2] == ["[]", "False"]


# -- datasets and log_dataset ----------------------------------------------------


def test_every_table_kind_is_recognised_and_described() -> None:
    tables = {
        "pandas.DataFrame": pd.DataFrame({"a": [1, 2]}),
        "pandas.Series": pd.Series([1.5, 2.5], name="x"),
        "numpy.ndarray": np.zeros((2, 3)),
        "pyarrow.Table": pa.table({"a": [1, 2]}),
        "pyarrow.Array": pa.chunked_array([[1], [2]]),
    }
    for kind, table in tables.items():
        assert table_kind(table) == kind and is_table(table)
        version = describe_table(table)
        assert version.kind == "dataframe" and version.rows == 2 and version.size > 0
        assert version.digest == digest_table(table)
    assert table_kind(pa.record_batch({"a": [1]})) == "pyarrow.Table"
    assert describe_table(tables["pandas.Series"]).schema == {"x": "float64"}
    assert describe_table(tables["numpy.ndarray"]).schema == {"values": "float64 (2, 3)"}
    structured = np.zeros(2, dtype=[("p", "i4"), ("q", "f8")])
    assert describe_table(structured).schema == {"p": "int32", "q": "float64"}
    assert not is_table("data.csv") and not is_table([1, 2]) and not is_table(None)
    assert is_dataframe(tables["pandas.DataFrame"]) and not is_dataframe(tables["pandas.Series"])


def test_log_dataset_takes_every_table_kind(tracker) -> None:
    tables = [
        pd.DataFrame({"when": pd.to_datetime(["2024-01-01", None]), "tags": [["a"], {"b": 1}]}),
        pd.Series(pd.date_range("2024", periods=2, tz="Europe/Paris"), name="t"),
        np.array([[1.0, 2.0]]),
        pa.table({"a": [1, None]}),
    ]
    with mlops.start_run() as run:
        versions = [mlops.log_dataset(table, name=f"t{i}") for i, table in enumerate(tables)]
        with pytest.raises(InvalidInput, match="path or a pandas DataFrame or Series, a numpy"):
            mlops.log_dataset(42)
    assert [v.digest for v in versions] == [digest_table(t) for t in tables]
    recorded = tracker.store.datasets.for_run(run.id)
    assert {d.dataset.digest for d in recorded} == {v.digest for v in versions}


def test_the_data_magic_takes_a_numpy_variable(ipython, tracker) -> None:
    ipython.user_ns["features"] = np.arange(12.0).reshape(4, 3)
    ipython.run_line_magic("mlops", "start")
    ipython.run_line_magic("mlops", "data features")
    [linked] = tracker.store.datasets.for_run(tracker.active_run.id)
    assert linked.source == "features" and linked.dataset.rows == 4
    assert linked.dataset.digest == digest_table(ipython.user_ns["features"])
