"""Content digests of in-memory tables, written `blake3:<hex>`.

`digest_table(value)` takes a pandas DataFrame or Series, a numpy array (any
dtype: numbers, datetimes, strings, structured, object), a pyarrow Table,
RecordBatch, Array or ChunkedArray, or a polars DataFrame or Series. The type
is recognised by the name of its class and module, so pandas, pyarrow and
polars are imported only when the value is one of theirs.

The digest is BLAKE3 over a canonical encoding, never over a text rendering:

- A header names the kind of table and the encoding's version.
- Every variable-length part is framed: names, dtype labels and strings carry
  their length; nested values carry their count. Reading the bytes back, one
  can tell where each part ends, so two different tables never encode alike.
- Fixed-width columns (numbers, booleans, datetimes, timedeltas, periods) are
  hashed from their own little-endian buffers, without a per-element step.
  Every NaN is hashed as the one quiet NaN (payload and sign dropped); -0.0 and
  0.0 stay distinct, as their bytes are. Slots under a null are zeroed.
- Strings are hashed as one offsets buffer and one UTF-8 buffer (pyarrow).
- An object column holding anything but strings is encoded value by value
  with a type tag (so 1, 1.0, True, "1" and b"1" differ; None, NaN, pd.NA and
  NaT differ), recursively for lists, tuples, dicts and sets (dict items and
  set members sorted by their encoding, so insertion order and the hash seed
  don't matter), Decimal (with its exponent: 1.0 and 1.00 differ), bytes,
  date/time values, and arrays or tables held in a cell. A numpy scalar counts
  as the Python number it equals. Anything else is refused with
  `InvalidInput` naming the column and the type.
- Column and index names are part of the digest with their type (1 and "1"
  differ), and so are dtypes (with a timezone's name), categories and their
  order flag, index names and MultiIndex levels on either axis.

Nothing depends on Python's salted `hash()`, on object ids or on memory
layout (strides, chunks, padding, dictionary encodings), so the same content
gives the same digest in every process. A pandas DataFrame of numbers and
strings with an unnamed default index gets the same digest as the first
version of this code (`hashing.digest_dataframe`), so recorded digests match.
"""

from __future__ import annotations

import datetime
import struct
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import blake3

from .errors import InvalidInput

__all__ = ["SUPPORTED_TABLES", "digest_table", "table_kind"]

_HEADERS = {
    "pandas.DataFrame": b"jupyter-mlops dataframe v1\n",
    "pandas.Series": b"jupyter-mlops series v1\n",
    "numpy.ndarray": b"jupyter-mlops ndarray v1\n",
    "pyarrow.Table": b"jupyter-mlops arrow table v1\n",
    "pyarrow.Array": b"jupyter-mlops arrow array v1\n",
    "polars.DataFrame": b"jupyter-mlops polars dataframe v1\n",
    "polars.Series": b"jupyter-mlops polars series v1\n",
}
# (top-level module, class name) of a class in the value's MRO -> kind.
_CLASSES = {
    ("pandas", "DataFrame"): "pandas.DataFrame",
    ("pandas", "Series"): "pandas.Series",
    ("numpy", "ndarray"): "numpy.ndarray",
    ("pyarrow", "Table"): "pyarrow.Table",
    ("pyarrow", "RecordBatch"): "pyarrow.Table",
    ("pyarrow", "Array"): "pyarrow.Array",
    ("pyarrow", "ChunkedArray"): "pyarrow.Array",
    ("polars", "DataFrame"): "polars.DataFrame",
    ("polars", "Series"): "polars.Series",
}
SUPPORTED_TABLES = (
    "a pandas DataFrame or Series, a numpy array, a pyarrow Table, RecordBatch or "
    "array, or a polars DataFrame or Series"
)
_NAN64 = struct.pack("<Q", 0x7FF8000000000000)
_MAX_DEPTH = 100
_FLUSH = 1 << 20

Write = Callable[[Any], Any]


def table_kind(value: Any) -> str | None:
    """`"pandas.DataFrame"`, `"numpy.ndarray"`, ... for a supported table, else None.

    Looks only at class and module names: nothing is imported.
    """
    for klass in type(value).__mro__:
        kind = _CLASSES.get((klass.__module__.partition(".")[0], klass.__name__))
        if kind is not None:
            return kind
    return None


def digest_table(value: Any) -> str:
    """`blake3:<hex>` of a table's content: names, dtypes, index and values.

    Raises `InvalidInput` for a value that is not a supported table, or a
    column holding a Python object with no canonical encoding.
    """
    kind = table_kind(value)
    if kind is None:
        raise InvalidInput(
            f"cannot digest a value of type {_type_name(value)}: expected {SUPPORTED_TABLES}"
        )
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update(_HEADERS[kind])
    _ENCODERS[kind](hasher.update, value)
    return f"blake3:{hasher.hexdigest()}"


# -- framing -------------------------------------------------------------------


def _frame(write: Write, label: bytes, dtype: str) -> None:
    encoded = dtype.encode("utf-8", "surrogatepass")
    write(struct.pack("<I", len(label)) + label + struct.pack("<I", len(encoded)) + encoded)


def _name_label(name: Any, where: str) -> bytes:
    """A column's label: `c:` and the text for a str (as in the first version), else
    `k:` and the tagged encoding, so that 1 and "1" differ."""
    if isinstance(name, str):
        return b"c:" + name.encode("utf-8", "surrogatepass")
    out = bytearray(b"k:")
    _encode_object(out, name, where, 0)
    return bytes(out)


def _type_name(value: Any) -> str:
    klass = type(value)
    return (
        klass.__qualname__
        if klass.__module__ == "builtins"
        else f"{klass.__module__}.{klass.__qualname__}"
    )


# -- pandas ----------------------------------------------------------------------


def _pandas_frame(write: Write, df: Any) -> None:
    write(struct.pack("<qq", len(df), df.shape[1]))
    _pandas_index(write, df.index, "the row index")
    for position, (name, column) in enumerate(df.items()):
        where = f"column {name!r}" if isinstance(name, str) else f"column {position} ({name!r})"
        _frame(
            write, _name_label(name, f"the name of column {position}"), _dtype_label(column.dtype)
        )
        _pandas_values(write, column, where)
    names = list(df.columns.names)
    if any(name is not None for name in names):
        # After the last column, so a frame whose column axis is unnamed encodes as before.
        out = bytearray(b"axis-names")
        _encode_object(out, names, "the column axis names", 0)
        write(out)


def _pandas_series(write: Write, series: Any) -> None:
    write(struct.pack("<q", len(series)))
    _pandas_index(write, series.index, "the index")
    name = series.name
    label = b"values" if name is None else _name_label(name, "the name of the series")
    _frame(write, label, _dtype_label(series.dtype))
    _pandas_values(write, series, "the series" if name is None else f"the series {name!r}")


def _pandas_index(write: Write, index: Any, where: str) -> None:
    """`range` + (start, stop, step) for a default-like index, `index` + dtype + values
    otherwise (both as in the first version); `named` + name before a named one;
    `multi` + level count, then each level, for a MultiIndex."""
    import pandas as pd

    if isinstance(index, pd.MultiIndex):
        write(b"multi" + struct.pack("<q", index.nlevels))
        for level in range(index.nlevels):
            _pandas_index(write, index.get_level_values(level), f"{where} level {level}")
        return
    if index.name is not None:
        out = bytearray(b"named")
        _encode_object(out, index.name, f"the name of {where}", 0)
        write(out)
    bounds = _as_range(index)
    if bounds is not None:
        write(b"range" + struct.pack("<qqq", *bounds))
        return
    _frame(write, b"index", _dtype_label(index.dtype))
    _pandas_values(write, index, where)


def _as_range(index: Any) -> tuple[int, int, int] | None:
    """(start, stop, step) of an int64 index that is an arithmetic progression, with
    stop normalised, so that a RangeIndex and an Index of the same values agree."""
    import numpy as np
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        start, step, n = index.start, index.step, len(index)
    elif isinstance(index.dtype, np.dtype) and index.dtype == np.int64:
        values = index.to_numpy()
        n = len(values)
        start = int(values[0]) if n else 0
        step = int(values[1]) - start if n > 1 else 1
        if n > 2 and (step == 0 or not (np.diff(values) == step).all()):
            return None
        if step == 0:
            return None
    else:
        return None
    if n == 0:
        return 0, 0, 1
    if n == 1:
        step = 1
    stop = start + n * step
    return (start, stop, step) if -(1 << 63) <= stop < (1 << 63) else None


def _dtype_label(dtype: Any) -> str:
    """str(dtype), with a timezone written by its name (not by its Python class)."""
    tz = getattr(dtype, "tz", None)
    if tz is not None and type(dtype).__name__ == "DatetimeTZDtype":
        return f"datetime64[{dtype.unit}, {_tz_name(tz)}]"
    return str(dtype)


def _tz_label(tz: Any) -> str:
    return "" if tz is None else _tz_name(tz)


def _tz_name(tz: Any) -> str:
    key = getattr(tz, "key", None)  # zoneinfo
    if isinstance(key, str):
        return key
    zone = getattr(tz, "zone", None)  # pytz
    if isinstance(zone, str):
        return zone
    if isinstance(tz, datetime.timezone):
        return tz.tzname(None)  # "UTC", "UTC+01:00"
    return str(tz)


def _pandas_values(write: Write, values: Any, where: str) -> None:
    """One column's (or index's) values, chosen by dtype; each form is self-delimiting."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, np.dtype):
        array = values.to_numpy()
        if dtype.kind == "O":
            _object_column(write, array, where)
        else:
            _ndarray_payload(write, array, where)
        return
    array = values.array
    if isinstance(array, (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)):
        _masked(write, array)
    elif isinstance(dtype, pd.StringDtype):
        import pyarrow as pa

        _strings(write, pa.array(values, from_pandas=True))
    elif isinstance(dtype, pd.CategoricalDtype):
        _categorical(write, array, where)
    elif isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype)):
        _raw(write, np.asarray(array.asi8))
    elif isinstance(dtype, pd.IntervalDtype):
        write(b"interval")
        for label, side in ((b"left", array.left), (b"right", array.right)):
            _frame(write, label, _dtype_label(side.dtype))
            _pandas_values(write, side, where)
    elif isinstance(dtype, pd.SparseDtype):
        dense = pd.Series(array.to_dense())
        _frame(write, b"dense", _dtype_label(dense.dtype))
        _pandas_values(write, dense, where)
    elif isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        write(b"arrow")
        _arrow_payload(write, _one_array(pa.array(array)), where)
    else:  # another extension type: its values as Python objects
        write(b"objects")
        _objects(write, np.asarray(array, dtype=object).ravel(), where)


def _masked(write: Write, array: Any) -> None:
    """Nullable Int/UInt/Float/boolean, as the first version wrote them: `nulls` and the
    mask when any value is missing, then the values with missing ones as 0."""
    import numpy as np

    mask = np.ascontiguousarray(array.isna(), dtype=bool)
    fill = False if array.dtype.kind == "b" else 0
    data = _little_endian(array.to_numpy(dtype=array.dtype.numpy_dtype, na_value=fill))
    if data.dtype.kind == "f":
        data = _canonical_nans(data)
    _nulls_then(write, mask, data.view(np.uint8))


def _nulls_then(write: Write, mask: Any, data: Any) -> None:
    """`nulls` + mask + data, or data alone when nothing is missing. Data that begins
    with the bytes `nulls` is written with its (empty) mask, so the two forms never
    read alike."""
    if mask.any() or bytes(data[:5]) == b"nulls":
        write(b"nulls")
        write(mask.view("u1"))
    write(data)


def _categorical(write: Write, array: Any, where: str) -> None:
    """`cat`, the order flag, the number of categories, the categories as an index
    (dtype and values) and the codes as int64 (-1 for missing)."""
    import numpy as np

    dtype = array.dtype
    categories = dtype.categories
    write(b"cat" + (b"\x01" if dtype.ordered else b"\x00"))
    write(struct.pack("<q", len(categories)))
    _frame(write, b"categories", _dtype_label(categories.dtype))
    _pandas_values(write, categories, f"the categories of {where}")
    _raw(write, np.asarray(array.codes, dtype=np.int64))


def _object_column(write: Write, array: Any, where: str) -> None:
    """Strings (with None for missing) as the first version wrote them; strings with
    other missing markers (NaN, pd.NA) as `strx`, the strings and those markers; any
    other object column as `objects` and each value tagged."""
    import numpy as np
    import pyarrow as pa

    if not _only_strings(array):
        write(b"objects")
        _objects(write, array, where)
        return
    strings = _one_array(pa.array(array, from_pandas=True))
    missing = array[np.asarray(strings.is_null(), dtype=bool)] if strings.null_count else ()
    if all(value is None for value in missing):
        _strings(write, strings)
        return
    write(b"strx")
    _strings(write, strings)
    _objects(write, missing, where)


def _only_strings(array: Any) -> bool:
    """True when every value of an object array is a str or a missing marker (None,
    NaN, pd.NA). Checked by pandas' type inference, which never descends into
    containers: pyarrow's conversion crashes on a list that contains itself."""
    from pandas.api.types import infer_dtype

    return infer_dtype(array, skipna=True) in ("string", "empty")


def _strings(write: Write, array: Any) -> None:
    """`nulls` + mask if any is missing, then `bin`, the n + 1 int64 offsets from 0
    and the UTF-8 bytes: the first version's form of a string column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    array = _one_array(array)
    if pa.types.is_null(array.type):
        array = pa.array([None] * len(array), type=pa.large_string())
    mask = None
    if array.null_count:
        mask = np.ascontiguousarray(array.is_null(), dtype=bool)
        write(b"nulls")
        write(mask.view(np.uint8))
    write(b"bin")
    _binary_payload(write, pc.cast(array, pa.large_binary()), mask)


def _binary_payload(write: Write, binary: Any, mask: Any) -> None:
    """The n + 1 int64 offsets from 0 and the bytes of a large_binary array, every
    missing value empty (Arrow allows bytes under a null; copied only when present)."""
    offsets, data = _binary_buffers(binary)
    if mask is not None and (offsets.view("<i8")[1:][mask] != offsets.view("<i8")[:-1][mask]).any():
        offsets, data = _binary_buffers(binary.fill_null(b""))
    write(offsets)
    if data is not None:
        write(data)


def _binary_buffers(binary: Any) -> tuple[Any, Any]:
    """Offsets from 0 (int64, n + 1) and the data bytes they cover of a large_binary array."""
    import numpy as np

    n = len(binary)
    offsets = np.frombuffer(binary.buffers()[1], dtype="<i8")[binary.offset : binary.offset + n + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    data = memoryview(binary.buffers()[2])[start:end] if end > start else None
    return np.ascontiguousarray(offsets - start).view(np.uint8), data


# -- numpy -----------------------------------------------------------------------


def _numpy_array(write: Write, array: Any) -> None:
    import numpy as np

    if isinstance(array, np.ma.MaskedArray):
        raise InvalidInput(
            "cannot digest a numpy masked array: its masked slots hold "
            "arbitrary values; log array.filled(...) or a pandas column "
            "with a nullable dtype instead"
        )
    _ndarray(write, array, "the array")


def _ndarray(write: Write, array: Any, where: str) -> None:
    """ndim, shape, dtype label, then the values in C order."""
    dtype = array.dtype
    write(struct.pack(f"<q{array.ndim}q", array.ndim, *array.shape))
    _frame(write, b"ndarray", "struct" if dtype.names is not None else _numpy_label(dtype))
    _ndarray_payload(write, array, where)


def _numpy_label(dtype: Any) -> str:
    return dtype.newbyteorder("<").str if dtype.byteorder in "=<>" else dtype.str


def _ndarray_payload(write: Write, array: Any, where: str) -> None:
    import numpy as np

    dtype = array.dtype
    if dtype.names is not None:
        # Field by field (name, then the field as an array): padding bytes and field
        # offsets are layout, not content.
        write(b"fields" + struct.pack("<q", len(dtype.names)))
        for name in dtype.names:
            encoded = name.encode("utf-8", "surrogatepass")
            write(struct.pack("<I", len(encoded)) + encoded)
            _ndarray(write, array[name], f"{where}, field {name!r}")
    elif dtype.kind in "biumM" or (dtype.kind in "fc" and not _long_double(dtype)):
        _raw(write, array)
    elif dtype.kind in "fc":
        # long double: 80 bits in 16 bytes whose padding is undefined; written as the
        # shortest text that reads back the same value (real, imaginary parts).
        parts = (
            np.ravel(array)
            if dtype.kind == "f"
            else np.stack([np.ravel(array.real), np.ravel(array.imag)], axis=-1).ravel()
        )
        _objects(write, [np.format_float_scientific(x, unique=True) for x in parts], where)
    elif dtype.kind in "USV":
        write(_bytes_of(_little_endian(array)))
    else:  # object, numpy's variable-width StringDType
        _objects(write, np.ravel(array.astype(object, copy=False)), where)


def _bytes_of(array: Any) -> memoryview:
    import numpy as np

    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _long_double(dtype: Any) -> bool:
    return dtype.itemsize > (8 if dtype.kind == "f" else 16)


def _little_endian(array: Any) -> Any:
    byteorder = array.dtype.byteorder
    if byteorder == ">" or (byteorder == "=" and sys.byteorder == "big"):
        return array.astype(array.dtype.newbyteorder("<"))
    return array


def _raw(write: Write, array: Any) -> None:
    """The values' little-endian bytes in C order, every NaN the canonical one."""
    import numpy as np

    array = np.ascontiguousarray(_little_endian(array))
    kind = array.dtype.kind
    if kind in "mM":
        array = array.view("<i8")
    elif kind in "fc":
        array = _canonical_nans(array)
    write(_bytes_of(array))


def _canonical_nans(array: Any) -> Any:
    import numpy as np

    floats = array.view(f"<f{array.dtype.itemsize // 2}") if array.dtype.kind == "c" else array
    nans = np.isnan(floats)
    if not nans.any():
        return array
    floats = floats.copy()
    # The quiet NaN with no payload and a clear sign bit, at each width.
    quiet = {2: 0x7E00, 4: 0x7FC00000, 8: 0x7FF8000000000000}[floats.dtype.itemsize]
    floats.view(f"<u{floats.dtype.itemsize}")[nans] = quiet
    return floats


# -- pyarrow and polars ----------------------------------------------------------


def _arrow_table(write: Write, table: Any) -> None:
    write(struct.pack("<qq", table.num_rows, table.num_columns))
    for field, column in zip(table.schema, table.columns, strict=True):
        where = f"column {field.name!r}"
        _frame(
            write,
            _name_label(field.name, where),
            str(field.type) + ("" if field.nullable else " not null"),
        )
        _arrow_payload(write, _one_array(column), where)


def _arrow_array(write: Write, array: Any) -> None:
    write(struct.pack("<q", len(array)))
    _frame(write, b"values", str(array.type))
    _arrow_payload(write, _one_array(array), "the array")


def _polars_frame(write: Write, df: Any) -> None:
    write(struct.pack("<qq", df.height, df.width))
    for series in df.get_columns():
        where = f"column {series.name!r}"
        _frame(write, _name_label(series.name, where), str(series.dtype))
        _polars_values(write, series, where)


def _polars_series(write: Write, series: Any) -> None:
    write(struct.pack("<q", len(series)))
    _frame(write, _name_label(series.name, "the series"), str(series.dtype))
    _polars_values(write, series, f"the series {series.name!r}")


def _polars_values(write: Write, series: Any, where: str) -> None:
    if str(series.dtype) == "Object":
        write(b"objects")
        _objects(write, series.to_list(), where)
        return
    write(b"arrow")
    _arrow_payload(write, _one_array(series.to_arrow()), where)


def _one_array(array: Any) -> Any:
    """One contiguous pyarrow Array for an Array or ChunkedArray, dictionaries decoded
    (chunks may hold different dictionaries; the decoded values are the content)."""
    import pyarrow as pa

    if isinstance(array, pa.Array):
        return _decoded(array)
    chunks = [_decoded(chunk) for chunk in array.chunks]
    if len(chunks) == 1:
        return chunks[0]
    if not chunks:
        return pa.array([], type=_decoded(pa.array([], type=array.type)).type)
    if pa.types.is_string(chunks[0].type) or pa.types.is_binary(chunks[0].type):
        large = pa.large_string() if pa.types.is_string(chunks[0].type) else pa.large_binary()
        chunks = [chunk.cast(large) for chunk in chunks]
    return pa.concat_arrays(chunks)


def _decoded(array: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(array.type):
        return array.dictionary_decode()
    if pa.types.is_run_end_encoded(array.type):
        return pc.run_end_decode(array)
    return array


def _arrow_payload(write: Write, array: Any, where: str) -> None:
    """Validity (`\\0`, or `\\1` and one byte per value), then the values: fixed-width
    bytes with null slots zeroed, offsets + data for strings and binaries, lengths +
    the child's payload for lists and maps, each field's payload for a struct."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    array = _decoded(array)
    if isinstance(array.type, pa.BaseExtensionType):
        array = _decoded(array.storage)
    typ = array.type
    if pa.types.is_null(typ):
        return
    mask = None
    if array.null_count:
        mask = np.ascontiguousarray(array.is_null(), dtype=bool)
        write(b"\x01")
        write(mask.view(np.uint8))
    else:
        write(b"\x00")
    if pa.types.is_boolean(typ):
        write(np.ascontiguousarray(array.fill_null(False), dtype=bool).view(np.uint8))
    elif (
        isinstance(typ, pa.FixedSizeBinaryType)
        or pa.types.is_integer(typ)
        or pa.types.is_floating(typ)
        or pa.types.is_temporal(typ)
    ):
        _arrow_fixed(write, array, mask)
    elif (
        pa.types.is_string(typ)
        or pa.types.is_large_string(typ)
        or pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
        or pa.types.is_string_view(typ)
        or pa.types.is_binary_view(typ)
    ):
        binary = pc.cast(
            array.cast(pa.large_string()) if pa.types.is_string_view(typ) else array,
            pa.large_binary(),
        )
        _binary_payload(write, binary, mask)
    elif pa.types.is_map(typ):
        entries = pa.large_list(pa.struct([typ.key_field, typ.item_field]))
        _arrow_list(write, array.cast(entries), where)
    elif (
        pa.types.is_list(typ)
        or pa.types.is_large_list(typ)
        or pa.types.is_fixed_size_list(typ)
        or pa.types.is_list_view(typ)
        or pa.types.is_large_list_view(typ)
    ):
        _arrow_list(write, array, where)
    elif pa.types.is_struct(typ):
        for child in array.flatten():
            _arrow_payload(write, child, where)
    else:
        raise InvalidInput(
            f"cannot digest {where}: its Arrow type {typ} is not supported; "
            "cast it to a plain type first"
        )


def _arrow_fixed(write: Write, array: Any, mask: Any) -> None:
    import numpy as np
    import pyarrow as pa

    typ = array.type
    width = typ.byte_width if isinstance(typ, pa.FixedSizeBinaryType) else typ.bit_width // 8
    buffer = array.buffers()[1]
    n = len(array)
    data = (
        np.frombuffer(buffer, dtype=np.uint8, count=(array.offset + n) * width)
        if buffer is not None
        else np.zeros(0, dtype=np.uint8)
    )
    data = data[array.offset * width :].reshape(n, width)
    if pa.types.is_floating(typ):
        data = _canonical_nans(np.ascontiguousarray(data).view(f"<f{width}")).view(np.uint8)
        data = data.reshape(n, width)
    if mask is not None:
        data = data.copy()
        data[mask] = 0
    write(memoryview(np.ascontiguousarray(data).reshape(-1)))


def _arrow_list(write: Write, array: Any, where: str) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = pc.list_value_length(array).fill_null(0).cast(pa.int64())
    write(np.ascontiguousarray(lengths, dtype="<i8").view(np.uint8))
    _arrow_payload(write, pc.list_flatten(array), where)


# -- Python objects --------------------------------------------------------------


def _objects(write: Write, values: Any, where: str) -> None:
    """Each value tagged (see `_encode_object`), in order; the count is known."""
    out = bytearray()
    encode = _encode_object
    for position, value in enumerate(values):
        encode(out, value, where, 0, position)
        if len(out) > _FLUSH:
            write(out)
            out = bytearray()
    if out:
        write(out)


def _encode_object(
    out: bytearray, value: Any, where: str, depth: int, position: int | None = None
) -> None:
    """Append one value's encoding to `out`: a one-byte tag, then a fixed-size body or
    a length (or count) and the body, so that values never read alike.

    N None; T, F booleans; i int (u32 length, two's complement); f float (8 bytes,
    NaN canonical); c complex; s str, b bytes, B bytearray (u64 length); d Decimal
    (its text); l list, t tuple (u64 count, items); { dict (count, key-value pairs
    sorted by the key's encoding); S set, Z frozenset (count, sorted members);
    D datetime, h time (ISO text and zone name); a date; e timedelta (days, seconds,
    microseconds, nanoseconds); M, m numpy datetime64, timedelta64 (unit, int64);
    g long double (shortest text); A pd.NA; X pd.NaT; I Interval; P Period;
    < an array or table in a cell (its header and encoding).
    """
    kind = type(value)
    if value is None:
        out += b"N"
    elif kind is str:
        encoded = value.encode("utf-8", "surrogatepass")
        out += b"s" + struct.pack("<Q", len(encoded)) + encoded
    elif kind is float:
        out += b"f" + (_NAN64 if value != value else struct.pack("<d", value))
    elif kind is bool:
        out += b"T" if value else b"F"
    elif kind is int:
        encoded = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        out += b"i" + struct.pack("<I", len(encoded)) + encoded
    else:
        if depth >= _MAX_DEPTH:
            raise InvalidInput(
                f"cannot digest {where}: a value is nested more than "
                f"{_MAX_DEPTH} levels deep (does a list contain itself?)"
            )
        _encode_other(out, value, where, depth, position)


def _encode_other(out: bytearray, value: Any, where: str, depth: int, position: int | None) -> None:
    numpy = sys.modules.get("numpy")
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        if value is pandas.NA:
            out += b"A"
            return
        if value is pandas.NaT:
            out += b"X"
            return
        if isinstance(value, pandas.Interval):
            _tagged_text(out, b"I", value.closed)
            _encode_object(out, value.left, where, depth + 1)
            _encode_object(out, value.right, where, depth + 1)
            return
        if isinstance(value, pandas.Period):
            _tagged_text(out, b"P", f"{value.freqstr} {value.ordinal}")
            return
    if numpy is not None and isinstance(value, numpy.generic):
        value = _numpy_scalar(out, value, numpy)
        if value is None:
            return
    # Subclasses (StrEnum, IntEnum, numpy's str_ and float64) count as their base type,
    # read without calling methods they may override.
    if isinstance(value, str):
        _encode_object(out, str.__str__(value), where, depth)
    elif isinstance(value, bool):
        out += b"T" if value else b"F"
    elif isinstance(value, int):
        _encode_object(out, int.__int__(value), where, depth)
    elif isinstance(value, float):
        _encode_object(out, float.__float__(value), where, depth)
    elif isinstance(value, complex):
        out += b"c"
        for part in (value.real, value.imag):
            out += _NAN64 if part != part else struct.pack("<d", part)
    elif isinstance(value, bytes):
        out += b"b" + struct.pack("<Q", len(value)) + bytes.__bytes__(value)
    elif isinstance(value, (bytearray, memoryview)):
        data = bytes(value)
        out += b"B" + struct.pack("<Q", len(data)) + data
    elif isinstance(value, Decimal):
        _tagged_text(out, b"d", str(value))
    elif isinstance(value, (list, tuple)):
        out += (b"l" if isinstance(value, list) else b"t") + struct.pack("<Q", len(value))
        for item in value:
            _encode_object(out, item, where, depth + 1)
    elif isinstance(value, dict):
        items = []
        for key, item in value.items():
            encoded_key, encoded_item = bytearray(), bytearray()
            _encode_object(encoded_key, key, where, depth + 1)
            _encode_object(encoded_item, item, where, depth + 1)
            items.append((bytes(encoded_key), bytes(encoded_item)))
        out += b"{" + struct.pack("<Q", len(items))
        for encoded_key, encoded_item in sorted(items):
            out += encoded_key + encoded_item
    elif isinstance(value, (set, frozenset)):
        members = []
        for item in value:
            encoded = bytearray()
            _encode_object(encoded, item, where, depth + 1)
            members.append(bytes(encoded))
        out += (b"S" if isinstance(value, set) else b"Z") + struct.pack("<Q", len(members))
        out += b"".join(sorted(members))
    elif isinstance(value, datetime.datetime):
        _tagged_text(out, b"D", f"{value.isoformat()} {_tz_label(value.tzinfo)}")
    elif isinstance(value, datetime.date):
        _tagged_text(out, b"a", value.isoformat())
    elif isinstance(value, datetime.time):
        _tagged_text(out, b"h", f"{value.isoformat()} {_tz_label(value.tzinfo)}")
    elif isinstance(value, datetime.timedelta):
        out += b"e"
        for part in (
            value.days,
            value.seconds,
            value.microseconds,
            getattr(value, "nanoseconds", 0),
        ):
            _encode_object(out, int(part), where, depth + 1)
    elif (kind := table_kind(value)) is not None:  # a cell holding an array or a table
        out += b"<" + _HEADERS[kind]
        _ENCODERS[kind](lambda data: out.extend(memoryview(data).cast("B")), value)
    else:
        at = "" if position is None else f" at position {position}"
        raise InvalidInput(
            f"cannot digest {where}: found a value of type {_type_name(value)}{at}, which "
            "has no canonical encoding; supported values are str, int, float, bool, None, bytes, "
            "Decimal, dates, times, timedeltas, lists, tuples, dicts, sets, and arrays and "
            "tables of these. Convert the column (for example with .astype(str)) before logging it"
        )


def _numpy_scalar(out: bytearray, value: Any, numpy: Any) -> Any:
    """A numpy scalar as the Python value it equals, or None when written here."""
    if isinstance(value, (numpy.datetime64, numpy.timedelta64)):
        unit, count = numpy.datetime_data(value.dtype)
        tag = b"M" if isinstance(value, numpy.datetime64) else b"m"
        _tagged_text(out, tag, f"{count}{unit}")
        out += struct.pack("<q", int(value.view("<i8")))
        return None
    if isinstance(value, numpy.floating) and value.dtype.itemsize > 8:
        _tagged_text(out, b"g", numpy.format_float_scientific(value, unique=True))
        return None
    if isinstance(value, (numpy.bool_, numpy.integer, numpy.floating, numpy.complexfloating)):
        return value.item()
    return value


def _tagged_text(out: bytearray, tag: bytes, text: str) -> None:
    encoded = text.encode("utf-8", "surrogatepass")
    out += tag + struct.pack("<Q", len(encoded)) + encoded


_ENCODERS: dict[str, Callable[[Write, Any], None]] = {
    "pandas.DataFrame": _pandas_frame,
    "pandas.Series": _pandas_series,
    "numpy.ndarray": _numpy_array,
    "pyarrow.Table": _arrow_table,
    "pyarrow.Array": _arrow_array,
    "polars.DataFrame": _polars_frame,
    "polars.Series": _polars_series,
}
