"""Checks of a loaded model: what scikit-learn and scipy would trust blindly at predict.

Decision trees and scipy sparse matrices are indexed without bounds checks at
predict time (an edited index segfaults or reads out of bounds), and a text
vectorizer whose `input` is "filename" or "file" opens whatever path a request
names. `check_loaded` walks everything reachable from the loaded object and
refuses each of these, naming where it sits (`model.steps['tfidf']`).
"""

from __future__ import annotations

import functools
from typing import Any

from .errors import InvalidInput, describe_exception

_PLAIN = (str, bytes, int, float, complex, bool, type(None))


def check_loaded(model: Any) -> None:
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
        problem = describe_exception(exc)
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
