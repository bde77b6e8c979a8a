"""Saving and loading models safely with skops: no pickle, a trusted-type list in our code.

A model file never decides what may be loaded. Every type it names must be on
the list kept here (`trusted_types`, exact names, never a module prefix) or be
passed explicitly by the caller in `trusted=`. Functions other than numpy and
scipy ufuncs (skops' default) and the two listed here, `numpy.memmap`, the
`builtins` beyond plain value types, `operator`, `os`, `subprocess`,
`importlib` and anything else with side effects when it is built are
therefore refused unless named by the caller.

The file is also checked around the build: its zip may not expand past a
bound (`MAX_EXPANSION`, `MAX_MEMBER_RATIO`) and its compressed members are
read in bounded chunks, so a lying size can't blow up memory; after loading,
decision trees and scipy sparse matrices are range-checked (scikit-learn and
scipy index them without bounds checks at predict time) and text vectorizers
must read their input as content, never as file names.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable
from typing import Any

from .errors import InvalidInput, UntrustedModel

FLAVOR = "sklearn-skops"

# What a model file's zip may expand to: a crafted file can declare compressed members
# that expand to gigabytes. Files written by mlops.log_model (skops' default) store their
# members uncompressed, so they are far inside these bounds; raise them for a file you
# trust that holds unusually compressible arrays.
MAX_EXPANSION = 20  # all members together: at most 20 x the file's size...
EXPANSION_ALLOWANCE = 64 * 2**20  # ...plus 64 MiB
MAX_MEMBER_RATIO = 100  # one member declaring over RATIO_FREE_BYTES: at most 100 x its bytes
RATIO_FREE_BYTES = 2**20
_READ_CHUNK = 2**20  # compressed members are read this much at a time, never whole

# Internal scikit-learn types that fitted estimators hold, found by saving fitted
# LogisticRegression, RandomForest*, GradientBoosting*, HistGradientBoosting*, SVC,
# KNeighbors*, StandardScaler, OneHotEncoder, ColumnTransformer, Pipeline,
# SimpleImputer and MLP* models (tests/test_tracking.py keeps that set loading).
# Each is a plain data holder: building it runs no I/O and calls nothing from the file.
_SKLEARN_INTERNAL_TYPES = (
    # Loss and link objects of GradientBoosting*, HistGradientBoosting* and the GLMs.
    *(f"sklearn._loss.loss.{name}" for name in (
        "HalfSquaredError", "AbsoluteError", "PinballLoss", "HuberLoss", "HalfPoissonLoss",
        "HalfGammaLoss", "HalfTweedieLoss", "HalfTweedieLossIdentity", "HalfBinomialLoss",
        "HalfMultinomialLoss", "ExponentialLoss")),
    *(f"sklearn._loss._loss.Cy{name}" for name in (
        "HalfSquaredError", "AbsoluteError", "PinballLoss", "HuberLoss", "HalfPoissonLoss",
        "HalfGammaLoss", "HalfTweedieLoss", "HalfTweedieLossIdentity", "HalfBinomialLoss",
        "HalfMultinomialLoss", "ExponentialLoss")),
    *(f"sklearn._loss.link.{name}" for name in (
        "Interval", "IdentityLink", "LogLink", "LogitLink", "HalfLogitLink",
        "MultinomialLogit")),
    # Tree storage of DecisionTree*, RandomForest*, ExtraTrees*, GradientBoosting* and
    # HistGradientBoosting*. skops leaves Tree and TreePredictor off its own defaults:
    # scikit-learn indexes their node arrays (like KDTree's and BallTree's below) without
    # bounds checks, so a crafted file can crash the process at predict time. Building
    # them runs no code from the file and touches no file, and every tree model needs
    # them, so we trust them and check each Tree's indices after loading (_check_loaded).
    # TreePredictor, KDTree and BallTree are not checked yet (README: security model).
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    # Neighbour search structures and distance metrics of KNeighbors* and friends.
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    *(f"sklearn.metrics._dist_metrics.{name}Distance{bits}" for bits in ("64", "32") for name in (
        "Euclidean", "SEuclidean", "Manhattan", "Chebyshev", "Minkowski", "Mahalanobis",
        "Hamming", "Canberra", "BrayCurtis", "Jaccard", "Matching", "Dice", "Kulsinski",
        "RogersTanimoto", "RussellRao", "SokalMichener", "SokalSneath", "Haversine",
        "PyFunc")),
    # Solver state of MLPClassifier / MLPRegressor.
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)
# Plain Python values skops writes for lists, dicts, strings, numbers, slices and bytes.
# Only these builtins: eval, exec, open, getattr and the rest must be named by the caller.
_PYTHON_TYPES = (
    *(f"builtins.{name}" for name in (
        "str", "int", "float", "bool", "list", "tuple", "set", "dict", "slice", "bytes",
        "bytearray")),
    "collections.OrderedDict",
    "collections.defaultdict",
)

# The only functions we trust: HistGradientBoosting* with categorical features keeps
# FunctionTransformer(partial(check_array, ...)), a pure input check. Any other
# function (os.system, builtins.eval, ...) must be named by the caller.
_TRUSTED_FUNCTIONS = (
    "functools.partial",
    "sklearn.utils.validation.check_array",
)


def save_model(model: Any) -> bytes:
    """Serialize a scikit-learn estimator or pipeline with skops."""
    if not _looks_like_estimator(model):
        raise InvalidInput(f"log_model saves scikit-learn estimators and pipelines; got a "
                           f"{type(model).__module__}.{type(model).__name__}")
    import skops.io as sio

    try:
        return sio.dumps(model)
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"skops cannot save this model: {exc}") from None


def load_model_bytes(data: bytes, trusted: Iterable[str] | None = None) -> Any:
    """Load a skops model file, refusing every type that is not trusted.

    Every type the file names is read from its schema before anything is
    imported or built, and each must be on `trusted_types()` or in `trusted`;
    functions must also pass skops' own audit (it trusts numpy and scipy
    ufuncs). Raises `UntrustedModel` naming the refused types, and
    `InvalidInput` for a file that is not a readable skops file (a pickle, a
    damaged or crafted zip).
    """
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    data = _bounded_archive(data)
    try:
        named = _schema_types(data)
    except Exception as exc:  # not a zip, no schema.json, not JSON
        raise InvalidInput(f"not a readable skops model file ({_describe(exc)}); model files "
                           "are saved with mlops.log_model, never with pickle or joblib") from None
    allowed = trusted_types() | frozenset(trusted or ())
    if any(not is_function and name not in allowed for name, is_function in named.items()):
        raise _refusal(data, named, allowed)
    try:
        # skops audits the whole tree again (per kind of node) before building anything.
        model = sio.loads(data, trusted=sorted(name for name in named if name in allowed))
    except UntrustedTypesFoundException:
        raise _refusal(data, named, allowed) from None
    except Exception as exc:  # the types passed, but the data does not build a model
        raise InvalidInput(f"cannot load this skops model file ({_describe(exc)}); it is "
                           "damaged or was not written by skops") from None
    _check_loaded(model)
    return model


def _schema_types(data: bytes) -> dict[str, bool]:
    """Every `module.Class` the file's schema names -> whether it is named as a function.

    Our list is checked against every node, not only against what skops'
    audit reports, so a gap in that audit for one kind of node is no way in.
    """
    import zipfile  # only when a model is loaded: keeps %load_ext light

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pending: list[Any] = [json.loads(archive.read("schema.json"))]
    named: dict[str, bool] = {}
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(name, str):
                qualified = f"{module}.{name}"
                is_function = node.get("__loader__") == "FunctionNode"
                named[qualified] = named.get(qualified, True) and is_function
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return named


def _refusal(data: bytes, named: dict[str, bool], allowed: frozenset[str]) -> UntrustedModel:
    """The error naming every refused type: ours, plus the functions skops does not trust."""
    import skops.io as sio

    try:
        reported = set(sio.get_untrusted_types(data=data))
    except Exception:  # the file's other types were refused already; name those
        reported = set()
    refused = {name for name, is_function in named.items()
               if not is_function and name not in allowed}
    refused |= {name for name in reported if name not in allowed}
    return UntrustedModel(sorted(refused) or ["(a type skops' audit refused)"])


def _bounded_archive(data: bytes) -> bytes:
    """The model file, with every member stored, once its zip is known not to be a bomb.

    The declared sizes are checked before anything is read: all members
    together at most `MAX_EXPANSION` x the file's size plus
    `EXPANSION_ALLOWANCE`, and no member over `RATIO_FREE_BYTES` expanding
    more than `MAX_MEMBER_RATIO` times. A declared size can lie, and
    `ZipFile.read` decompresses up to 1 GiB at a time before it notices, so
    compressed members are read here in bounded chunks (never past their
    declared size, CRC checked) and handed to skops in a stored copy. Raises
    `InvalidInput` naming the member.
    """
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # not a zip (a bare pickle), or a damaged directory
        raise InvalidInput(f"not a readable skops model file ({_describe(exc)}); model files "
                           "are saved with mlops.log_model, never with pickle or joblib") from None
    with archive:
        members = archive.infolist()
        names = [info.filename for info in members]
        if len(set(names)) != len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise InvalidInput(f"refusing model file: member {twice!r} appears twice in its zip; "
                               "skops never writes that, so the file was edited")
        for info in members:
            _check_member(info)
        total = sum(info.file_size for info in members)
        limit = MAX_EXPANSION * len(data) + EXPANSION_ALLOWANCE
        if total > limit:
            largest = max(members, key=lambda info: info.file_size)
            raise InvalidInput(
                f"refusing model file: its members declare {_size(total)} uncompressed from a "
                f"file of {_size(len(data))} (at most {_size(limit)} is loaded; the largest is "
                f"{largest.filename!r}, {_size(largest.file_size)}): a zip bomb looks like this; "
                "if you trust the file, re-save it uncompressed (skops' default) or raise "
                "jupyter_mlops.models.MAX_EXPANSION")
        if all(info.compress_type == zipfile.ZIP_STORED for info in members):
            return data
        stored = io.BytesIO()
        with zipfile.ZipFile(stored, "w") as copy:
            for info in members:
                copy.writestr(info.filename, _read_member(archive, info))
    return stored.getvalue()


def _check_member(info: Any) -> None:
    """Refuse one zip member that is encrypted, oddly compressed or expands too far."""
    import zipfile

    name = info.filename
    if info.flag_bits & 0x1:
        raise InvalidInput(f"refusing model file: member {name!r} is encrypted; skops never "
                           "writes that")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2 and LZMA decompress without an output bound: one read could expand gigabytes.
        raise InvalidInput(f"refusing model file: member {name!r} uses zip compression method "
                           f"{info.compress_type}; only stored or deflated members are loaded: "
                           "re-save the model with skops' default (stored)")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise InvalidInput(f"refusing model file: member {name!r} is stored, yet declares "
                           f"{info.file_size:,} bytes in {info.compress_size:,}; the file is "
                           "damaged or was edited")
    if (info.file_size > RATIO_FREE_BYTES
            and info.file_size > MAX_MEMBER_RATIO * max(info.compress_size, 1)):
        raise InvalidInput(
            f"refusing model file: member {name!r} declares {_size(info.file_size)} "
            f"uncompressed from {_size(info.compress_size)} "
            f"({info.file_size // max(info.compress_size, 1):,}x; at most {MAX_MEMBER_RATIO}x "
            "is loaded): a zip bomb looks like this; if you trust the file, re-save it "
            "uncompressed (skops' default) or raise jupyter_mlops.models.MAX_MEMBER_RATIO")


def _read_member(archive: Any, info: Any) -> bytes:
    """One member's bytes, read a chunk at a time: never more than its declared size."""
    chunks = []
    try:
        with archive.open(info) as member:
            while chunk := member.read(_READ_CHUNK):
                chunks.append(chunk)
        content = b"".join(chunks)
        if len(content) != info.file_size:  # the stream ended first and its CRC matched
            raise ValueError(f"it holds {len(content):,} bytes and declares {info.file_size:,}")
    except Exception as exc:  # BadZipFile (CRC), EOFError, zlib.error: content != header
        raise InvalidInput(f"refusing model file: member {info.filename!r} does not match its "
                           f"declared size and checksum ({_describe(exc)}); the file is damaged "
                           "or was edited") from None
    return content


def _size(count: float) -> str:
    if count < 1024:
        return f"{count:,} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        count /= 1024
        if count < 1024 or unit == "GiB":
            return f"{count:,.1f} {unit}"
    raise AssertionError("unreachable")


_PLAIN = (str, bytes, int, float, complex, bool, type(None))


def _check_loaded(model: Any) -> None:
    """Refuse what scikit-learn and scipy would trust blindly at predict time.

    Walks everything reachable from the loaded object (estimator attributes,
    pipeline steps, dicts, lists, object arrays, `functools.partial`
    arguments) and checks each decision tree (`_check_tree`), each scipy
    sparse matrix or array (`_check_sparse`) and each estimator with an
    `input` parameter (the text vectorizers: `_check_text_input`). Raises
    `InvalidInput` naming where the offending part sits, for instance
    `model.steps['tfidf']`.
    """
    import numpy as np
    import scipy.sparse as sparse
    from sklearn.base import BaseEstimator
    from sklearn.tree._tree import Tree

    # (object, where it is, columns it may index: None when not known)
    pending: list[tuple[Any, str, int | None]] = [(model, "model", None)]
    seen: set[tuple[int, int | None]] = set()  # an object shared by two paths: checked on each
    while pending:
        obj, where, width = pending.pop()
        if isinstance(obj, _PLAIN) or (id(obj), width) in seen:
            continue
        seen.add((id(obj), width))
        children: list[tuple[Any, str, int | None]] = []
        if isinstance(obj, Tree):
            _check_tree(obj, where, width)
        elif sparse.issparse(obj):
            _check_sparse(obj, where)
            continue  # its arrays are checked; nothing else hides in it
        elif isinstance(obj, np.ndarray):
            if obj.dtype.names:  # a structured array: its fields may hold objects
                children = [(obj[field], f"{where}[{field!r}]", width)
                            for field in obj.dtype.names]
            elif obj.dtype.hasobject:
                children = [(v, f"{where}[{i}]", width) for i, v in enumerate(obj.ravel())
                            if not isinstance(v, _PLAIN)]
        elif isinstance(obj, dict):
            children = [(v, f"{where}[{k!r}]", width) for k, v in obj.items()
                        if not isinstance(v, _PLAIN)]
            children += [(k, f"{where} key {k!r}", width) for k in obj
                         if not isinstance(k, _PLAIN)]
        elif isinstance(obj, list | tuple | set | frozenset):
            for i, item in enumerate(obj):
                if isinstance(item, tuple) and item and isinstance(item[0], str):
                    # a (name, estimator, ...) step of a Pipeline, ColumnTransformer...
                    step = f"{where}[{item[0]!r}]"
                    children += [(part, step if k == 1 else f"{step}[{k}]", width)
                                 for k, part in enumerate(item) if k]
                elif not isinstance(item, _PLAIN):
                    children.append((item, f"{where}[{i}]", width))
        elif isinstance(obj, functools.partial):
            children = [(obj.func, f"{where}.func", None), (obj.args, f"{where}.args", None),
                        (obj.keywords, f"{where}.keywords", None)]
        if isinstance(obj, BaseEstimator) and _takes_input(type(obj)):
            _check_text_input(obj, where)
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict) and attributes:
            own = attributes.get("n_features_in_") if isinstance(obj, BaseEstimator) else None
            if isinstance(own, int) and width is not None and own > width:
                raise InvalidInput(f"refusing a crafted model: {where} claims {own} input "
                                   f"columns inside an ensemble given {width}")
            inner = own if isinstance(own, int) else width
            for key, value in attributes.items():
                if not isinstance(value, _PLAIN):
                    # Ensemble members and a tree see the same columns; other parts
                    # (pipeline steps, transformers) may see different ones.
                    bound = inner if key in ("estimators_", "tree_") else None
                    children.append((value, f"{where}.{key}", bound))
        pending.extend(reversed(children))


@functools.cache
def _takes_input(cls: type) -> bool:
    """Whether an estimator class has an `input` parameter (the text vectorizers)."""
    import inspect

    try:
        return "input" in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def _check_text_input(estimator: Any, where: str) -> None:
    """Refuse a vectorizer told to read files (`input="filename"` or `"file"`).

    It would open whatever path each value names, so a request holding
    `/etc/passwd` would make it read that file.
    """
    value = vars(estimator).get("input", "content")
    if isinstance(value, str) and value == "content":
        return
    raise InvalidInput(
        f"refusing a model whose {where} ({type(estimator).__name__}) has input={value!r}: it "
        "would open the file named by each value it is given (a request could name "
        "/etc/passwd); only input='content' is loaded: set input='content' and save it again")


def _check_sparse(matrix: Any, where: str) -> None:
    """Refuse a scipy sparse matrix or array whose index arrays point outside it.

    scipy's compiled routines trust a matrix's `indices`, `indptr`, `coords`
    and `offsets`, so an edited file would read or write outside memory at
    predict time (a segfault). Checks every format skops writes (csr, csc,
    bsr, coo, dia) in full, and refuses the others (lil, dok), which skops
    cannot write. Raises `InvalidInput` naming where the matrix sits.
    """
    try:
        problem = _sparse_problem(matrix)
    except (ValueError, TypeError, AttributeError, IndexError, OverflowError,
            ZeroDivisionError) as exc:
        problem = _describe(exc)
    if problem:
        raise InvalidInput(
            f"refusing a crafted model: {where} ({type(matrix).__name__}) {problem}; scipy would "
            "read outside memory with it at predict time, and scipy never saves such a matrix, "
            "so this file was edited: do not use it")


def _sparse_problem(matrix: Any) -> str | None:
    """What is wrong with `matrix`, or None when every index in it is in range."""
    import numpy as np
    import scipy.sparse as sparse

    cls = type(matrix)
    fmt = next((f for f in ("csr", "csc", "bsr", "coo", "dia")
                if issubclass(cls, (getattr(sparse, f"{f}_matrix"),
                                    getattr(sparse, f"{f}_array")))), None)
    if fmt is None:  # lil and dok: skops can't write them (save_npz refuses them)
        return "is in a sparse format skops never writes, which can't be checked"
    extra = set(vars(matrix)) - _sparse_attributes(cls)
    if extra:  # an attribute in the instance would shadow scipy's own methods
        return f"holds attributes scipy never sets ({', '.join(sorted(extra))})"
    shape = matrix._shape
    ndims = (2,)  # sparse arrays may also be 1-D (csr, coo) or n-D (coo)
    if isinstance(matrix, sparse.sparray) and fmt in ("csr", "coo"):
        ndims = range(1, 3) if fmt == "csr" else range(1, 65)
    if not (isinstance(shape, tuple) and len(shape) in ndims
            and all(isinstance(n, int | np.integer) and n >= 0 for n in shape)):
        return f"has shape {shape!r}"
    if type(matrix.data) is not np.ndarray or matrix.data.dtype.hasobject:
        return "holds data that is not a numeric array"
    if fmt == "coo":
        if type(matrix.coords) is not tuple:
            return "has coords that are not a tuple of arrays"
        indexes = {f"coords[{i}]": array for i, array in enumerate(matrix.coords)}
    else:
        names = ("offsets",) if fmt == "dia" else ("indices", "indptr")
        indexes = {name: getattr(matrix, name) for name in names}
    for name, array in indexes.items():
        if type(array) is not np.ndarray or array.dtype.kind != "i" or array.ndim != 1:
            return f"has {name} that is not a 1-D integer array"
    if fmt == "coo":
        return _coo_problem(matrix)
    if fmt == "dia":
        return _dia_problem(matrix)
    return _compressed_problem(matrix, fmt)


@functools.cache
def _sparse_attributes(cls: type) -> frozenset[str]:
    """The instance attributes scipy gives a matrix of `cls` (its format caches included)."""
    flags = ("_has_sorted_indices", "_has_canonical_format", "has_canonical_format")
    return frozenset((*vars(cls((1, 1))), *flags))


def _compressed_problem(matrix: Any, fmt: str) -> str | None:
    """csr, csc and bsr: the index pointer and the indices (scipy's own full check misses
    a decreasing index pointer when the matrix holds no values)."""
    import warnings

    import numpy as np

    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    if fmt == "bsr":
        rows, cols = matrix._shape
        if data.ndim != 3 or 0 in data.shape[1:]:
            return f"has block data of shape {data.shape}"
        height, width = data.shape[1:]
        if rows % height or cols % width:
            return f"has {height}x{width} blocks that don't tile its {rows}x{cols} shape"
        major, minor = rows // height, cols // width
    else:
        if data.ndim != 1:
            return "has data that is not 1-D"
        major, minor = matrix._swap(matrix._shape_as_2d)
    if len(indptr) != major + 1 or indptr[0] != 0:
        return f"has an index pointer of {len(indptr)} entries (expected {major + 1} from 0)"
    if len(indices) != len(data) or indptr[-1] > len(indices):
        return f"has an index pointer reaching {indptr[-1]} in {len(indices)} indices"
    if (np.diff(indptr) < 0).any():
        return "has an index pointer that goes down"
    used = indices[:indptr[-1]]
    if used.size and (used.min() < 0 or used.max() >= minor):
        return f"has indices outside 0..{minor - 1} ({used.min()}..{used.max()})"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        type(matrix).check_format(matrix, full_check=True)  # scipy's own: casts and prunes
    for flag in ("_has_sorted_indices", "_has_canonical_format"):
        vars(matrix).pop(flag, None)  # scipy recomputes them from the checked arrays
    return None


def _coo_problem(matrix: Any) -> str | None:
    shape, coords, data = matrix._shape, matrix.coords, matrix.data
    if len(coords) != len(shape) or data.ndim != 1 or any(len(c) != len(data) for c in coords):
        return f"has {len(coords)} coordinate arrays that don't match its shape or data"
    for axis, (index, size) in enumerate(zip(coords, shape, strict=True)):
        if index.size and (index.min() < 0 or index.max() >= size):
            return f"has axis {axis} coordinates outside 0..{size - 1}"
    matrix.has_canonical_format = False  # scipy sorts and sums duplicates again when needed
    return None


def _dia_problem(matrix: Any) -> str | None:
    import numpy as np

    (rows, cols), offsets, data = matrix._shape, matrix.offsets, matrix.data
    if data.ndim != 2 or data.shape[0] != len(offsets):
        return f"has {len(offsets)} offsets for diagonal data of shape {data.shape}"
    if len(np.unique(offsets)) != len(offsets):
        return "has the same diagonal twice"
    if offsets.size and (offsets.min() < -rows - cols or offsets.max() > rows + cols):
        return f"has diagonal offsets outside its {rows}x{cols} shape"
    return None


def _check_tree(tree: Any, where: str, width: int | None) -> None:
    import numpy as np

    count = tree.node_count
    if not 0 < count <= tree.capacity:
        raise InvalidInput(f"refusing a crafted model: {where} has {count} nodes in room "
                           f"for {tree.capacity}")
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    index = np.arange(count)
    columns = tree.n_features if width is None else min(tree.n_features, width)
    inside = ((left > index) & (left < count) & (right > index) & (right < count)
              & (feature >= 0) & (feature < columns))
    good = np.where(left == -1, right == -1, inside)
    if not good.all():
        node = int(np.argmin(good))
        raise InvalidInput(
            f"refusing a crafted model: {where} node {node} points outside the tree or its "
            f"input (children {int(left[node])}, {int(right[node])} of {count} nodes; feature "
            f"{int(feature[node])} of {columns} columns); scikit-learn never saves such a "
            "tree, so this file was edited: do not use it")


@functools.lru_cache(maxsize=1)
def trusted_types() -> frozenset[str]:
    """Every type name a model file may hold without `trusted=`: exact names only.

    skops' own defaults (Python values, numpy arrays, dtypes and random state,
    scipy sparse matrices, the scikit-learn estimators), the internal types
    fitted estimators hold, and two pure functions. Computed on first use (it
    lists scikit-learn's installed estimators), then cached for the process.
    """
    return frozenset((*_PYTHON_TYPES, *_sklearn_estimators(), *_SKLEARN_INTERNAL_TYPES,
                      *_TRUSTED_FUNCTIONS, *_numpy_types(), *_scipy_sparse_types()))


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _sklearn_estimators() -> list[str]:
    """Every public scikit-learn estimator and transformer class, as installed."""
    from sklearn.utils import all_estimators

    return [_type_name(cls) for _, cls in all_estimators()
            if cls.__module__.startswith("sklearn.")]


def _numpy_types() -> list[str]:
    """The numpy types a fitted estimator holds: arrays, dtypes, scalars, random state.

    `numpy.memmap` is deliberately absent: building one opens (and can create
    or truncate) a file.
    """
    import numpy as np

    scalars = {_type_name(t) for t in np.sctypeDict.values() if t.__module__ == "numpy"}
    bit_generators = [_type_name(getattr(np.random, name)) for name in
                      ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")]
    return [*sorted(scalars), _type_name(np.ndarray), _type_name(np.dtype),
            _type_name(np.ma.MaskedArray), _type_name(np.random.RandomState),
            _type_name(np.random.Generator), *bit_generators]


def _scipy_sparse_types() -> list[str]:
    """scipy sparse matrices and arrays in each storage format (fitted on sparse input)."""
    import scipy.sparse as sparse

    formats = ("bsr", "coo", "csc", "csr", "dia", "dok", "lil")
    return [_type_name(getattr(sparse, f"{fmt}_{kind}")) for fmt in formats
            for kind in ("matrix", "array") if hasattr(sparse, f"{fmt}_{kind}")]


def _describe(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _looks_like_estimator(model: Any) -> bool:
    return callable(getattr(model, "fit", None)) and callable(getattr(model, "get_params", None))


def signature(model: Any, input_example: Any = None,
              dataset_schemas: Iterable[dict[str, str]] = ()) -> dict[str, Any] | None:
    """The model's inputs: column names and dtypes when it was fitted on a DataFrame.

    Dtypes come from `input_example` when given, else from the first logged
    input dataset whose schema holds every column the model saw.
    """
    from .datasets import is_dataframe

    if input_example is not None and is_dataframe(input_example):
        return {"inputs": [{"name": str(k), "dtype": str(v)}
                           for k, v in input_example.dtypes.items()]}
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        count = getattr(model, "n_features_in_", None)
        return None if count is None else {"inputs": None, "n_features": int(count)}
    names = [str(n) for n in names]
    for schema in dataset_schemas:
        if schema and all(n in schema for n in names):
            return {"inputs": [{"name": n, "dtype": schema[n]} for n in names]}
    return {"inputs": [{"name": n, "dtype": None} for n in names]}
