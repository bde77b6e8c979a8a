"""scipy sparse matrices in a model file are range-checked on load (issue 9).

scipy's compiled routines trust a sparse matrix's `indices`, `indptr`,
`coords` and `offsets`: a model file whose matrix points outside its arrays
loads fine and then crashes the process (a segfault) at predict time, taking
`mlops serve` down with it. Each hostile file here is a real skops file: a
fitted model whose matrix was edited before `skops.io.dumps`, or a file whose
schema builds the matrix attribute by attribute (skops' ObjectNode), which
skips scipy's constructor and its checks.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import scipy.sparse as sparse
import skops.io as sio
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.models import load_model_bytes

X = sparse.random(40, 10, density=0.3, format="csr", random_state=0)
Y = np.arange(40) % 2


def _knn():  # noqa: ANN202
    """A fitted model that keeps its training data as a csr matrix (`_fit_X`)."""
    return KNeighborsClassifier(n_neighbors=3).fit(X, Y)


def _holding(matrix) -> bytes:  # noqa: ANN001
    """A fitted model file with `matrix` as one of its attributes."""
    model = _knn()
    model.extra_ = matrix
    return sio.dumps(model)


def _refused(data: bytes, *expected: str) -> str:
    with pytest.raises(InvalidInput) as info:
        load_model_bytes(data)
    message = str(info.value)
    assert all(part in message for part in expected), message
    assert "\n" not in message and "Traceback" not in message
    return message


# -- legitimate models still load ----------------------------------------------------------

def test_models_fitted_on_sparse_input_load_and_predict_the_same() -> None:
    for model in (_knn(), SVC().fit(X, Y)):
        loaded = load_model_bytes(sio.dumps(model))
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("fmt", ["csr", "csc", "bsr", "coo", "dia"])
@pytest.mark.parametrize("kind", ["matrix", "array"])
def test_every_format_skops_writes_loads(fmt: str, kind: str) -> None:
    dense = np.array([[1.0, 0, 2, 0], [0, 0, 3, 4], [5, 0, 0, 6], [0, 7, 0, 0]])
    matrix = getattr(sparse, f"{fmt}_{kind}")(dense)
    loaded = load_model_bytes(_holding(matrix)).extra_
    assert type(loaded) is type(matrix)
    np.testing.assert_array_equal(loaded.toarray(), dense)
    np.testing.assert_array_equal(loaded @ np.ones(4), dense @ np.ones(4))


def test_an_empty_matrix_and_a_1d_sparse_array_load() -> None:
    assert load_model_bytes(_holding(sparse.csr_matrix((3, 5)))).extra_.shape == (3, 5)
    vector = sparse.csr_array(np.array([0.0, 1.0, 0.0, 2.0]))
    assert load_model_bytes(_holding(vector)).extra_.toarray().tolist() == [0, 1, 0, 2]


# -- edited matrices are refused -----------------------------------------------------------

def test_indices_out_of_range_are_refused_before_predict() -> None:
    model = _knn()
    model._fit_X.indices[3] = 10**6
    _refused(sio.dumps(model), "model._fit_X (csr_matrix)", "indices outside 0..9",
             "do not use it")


def test_the_refused_file_really_crashes_predict() -> None:
    """What the check stops: loaded by skops alone, the same file kills the process."""
    code = """if True:
        import numpy as np, scipy.sparse as sparse, skops.io as sio
        from sklearn.neighbors import KNeighborsClassifier
        X = sparse.random(40, 10, density=0.3, format="csr", random_state=0)
        model = KNeighborsClassifier(n_neighbors=3).fit(X, np.arange(40) % 2)
        model._fit_X.indices[:] = 10**9
        data = sio.dumps(model)
        loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        loaded.predict(X)
        print("predicted")
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert result.returncode < 0 or b"predicted" not in result.stdout, result


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda m: m.indices.__setitem__(0, -1), "indices outside"),
    (lambda m: m.indptr.__setitem__(slice(1, 3), [5, 1]), "index pointer that goes down"),
])
@pytest.mark.parametrize("fmt", ["csr", "csc", "bsr"])
def test_compressed_formats_with_edited_indices_are_refused(fmt: str, edit, problem: str) -> None:
    matrix = sparse.random(6, 6, density=0.5, format=fmt, random_state=1)
    edit(matrix)
    _refused(_holding(matrix), f"model.extra_ ({fmt}_matrix)", problem)


def test_a_decreasing_index_pointer_of_an_empty_matrix_is_refused() -> None:
    """scipy's own full check skips the index pointer when the matrix holds no values,
    yet row 0 of this one spans 5 indices that do not exist."""
    matrix = sparse.csr_matrix((3, 3))
    matrix.indptr = np.array([0, 5, 0, 0], dtype=np.int32)
    _refused(_holding(matrix), "index pointer that goes down")


def test_bsr_block_indices_out_of_range_are_refused() -> None:
    matrix = sparse.bsr_matrix(np.eye(4), blocksize=(2, 2))
    matrix.indices[-1] = 7
    _refused(_holding(matrix), "model.extra_ (bsr_matrix)", "indices outside 0..1")


# Files whose matrix is built attribute by attribute, skipping scipy's constructor.

def _object_node_file(cls: type, attributes: dict) -> bytes:
    """A model file whose `extra_` is `cls` built by skops' ObjectNode from `attributes`."""
    model = _knn()
    model.extra_ = attributes
    data = sio.dumps(model)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members["schema.json"])
    state = schema["content"]["content"]["extra_"]
    schema["content"]["content"]["extra_"] = {
        "__class__": cls.__name__, "__module__": cls.__module__, "__loader__": "ObjectNode",
        "content": state}
    members["schema.json"] = json.dumps(schema).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _csr_attributes(**changes: object) -> dict:
    good = sparse.csr_matrix(np.eye(3))
    return {"_shape": (3, 3), "maxprint": 50, "data": good.data, "indices": good.indices,
            "indptr": good.indptr, **changes}


def test_a_matrix_built_attribute_by_attribute_is_checked_too() -> None:
    assert load_model_bytes(_object_node_file(sparse.csr_matrix, _csr_attributes())) \
        .extra_.toarray().tolist() == np.eye(3).tolist()
    crafted = _csr_attributes(indices=np.array([0, 1, 10**6], dtype=np.int32))
    _refused(_object_node_file(sparse.csr_matrix, crafted), "model.extra_ (csr_matrix)",
             "indices outside 0..2")


@pytest.mark.parametrize(("changes", "problem"), [
    ({"indices": np.array([0.0, 1.0, np.nan])}, "indices that is not a 1-D integer array"),
    ({"_shape": (3, -3)}, "has shape (3, -3)"),
    ({"_shape": "3x3"}, "has shape '3x3'"),
    ({"indptr": np.array([0, 1, 2], dtype=np.int32)}, "index pointer of 3 entries"),
    ({"indptr": np.array([0, 1, 2, 9], dtype=np.int32)}, "index pointer reaching 9"),
    ({"_has_sorted_indices": True, "indices": np.array([2, 0, 1], dtype=np.int32),
      "indptr": np.array([0, 2, 3, 3], dtype=np.int32)}, None),
    ({"check_format": 0}, "attributes scipy never sets (check_format)"),
])
def test_crafted_csr_attributes_are_refused(changes: dict, problem: str | None) -> None:
    data = _object_node_file(sparse.csr_matrix, _csr_attributes(**changes))
    if problem is None:  # a false "sorted" flag is dropped, not trusted: scipy recomputes it
        loaded = load_model_bytes(data).extra_
        assert loaded.has_sorted_indices is False
        return
    _refused(data, "model.extra_ (csr_matrix)", problem)


def test_crafted_coo_and_dia_attributes_are_refused() -> None:
    row, col = np.array([0, 1, 2]), np.array([0, 1, 10**6])
    coo = {"_shape": (3, 3), "maxprint": 50, "data": np.ones(3), "coords": (row, col),
           "has_canonical_format": True}
    _refused(_object_node_file(sparse.coo_matrix, coo), "model.extra_ (coo_matrix)",
             "axis 1 coordinates outside 0..2")
    dia = {"_shape": (3, 3), "maxprint": 50, "data": np.ones((1, 3)),
           "offsets": np.array([0, 1])}
    _refused(_object_node_file(sparse.dia_matrix, dia), "model.extra_ (dia_matrix)",
             "2 offsets for diagonal data of shape (1, 3)")


def test_formats_skops_never_writes_are_refused() -> None:
    lil = {"_shape": (3, 3), "maxprint": 50, "dtype": np.dtype("float64"),
           "rows": np.array([[10**6], [], []], dtype=object),
           "data": np.array([[1.0], [], []], dtype=object)}
    _refused(_object_node_file(sparse.lil_matrix, lil), "model.extra_ (lil_matrix)",
             "sparse format skops never writes")


def test_a_matrix_hidden_in_a_list_of_an_estimator_is_found() -> None:
    bad = sparse.csr_matrix(np.eye(3))
    bad.indices[0] = 99
    _refused(_holding([1, {"deep": (bad,)}]), "model.extra_[1]['deep'][0] (csr_matrix)")
