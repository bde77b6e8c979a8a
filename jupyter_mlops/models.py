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

from .errors import InvalidInput, UntrustedModel, describe_exception
from .model_archive import bounded_archive, canonical_archive
from .model_checks import check_loaded

FLAVOR = "sklearn-skops"

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
    """Serialize a scikit-learn estimator or pipeline with skops, canonically: the same
    fitted model gives the same bytes in any process (`canonical_archive`)."""
    if not _looks_like_estimator(model):
        raise InvalidInput(f"log_model saves scikit-learn estimators and pipelines; got a "
                           f"{type(model).__module__}.{type(model).__name__}")
    import skops.io as sio

    try:
        data = sio.dumps(model)
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"skops cannot save this model: {exc}") from None
    return canonical_archive(data)


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

    data = bounded_archive(data)
    try:
        named = _schema_types(data)
    except Exception as exc:  # not a zip, no schema.json, not JSON
        raise InvalidInput(f"not a readable skops model file ({describe_exception(exc)}); "
                           "model files are saved with mlops.log_model, never with pickle or "
                           "joblib") from None
    allowed = trusted_types() | frozenset(trusted or ())
    if any(not is_function and name not in allowed for name, is_function in named.items()):
        raise _refusal(data, named, allowed)
    try:
        # skops audits the whole tree again (per kind of node) before building anything.
        model = sio.loads(data, trusted=sorted(name for name in named if name in allowed))
    except UntrustedTypesFoundException:
        raise _refusal(data, named, allowed) from None
    except Exception as exc:  # the types passed, but the data does not build a model
        raise InvalidInput(f"cannot load this skops model file ({describe_exception(exc)}); it is "
                           "damaged or was not written by skops") from None
    check_loaded(model)
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
