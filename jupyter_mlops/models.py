"""Saving and loading models safely with skops: no pickle, a trusted-type list in our code.

A model file never decides what may be loaded: every type it names must come
from a module on `TRUSTED_MODULES` and be a class, or be passed explicitly by
the caller in `trusted=`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from .errors import InvalidInput, UntrustedModel

FLAVOR = "sklearn-skops"
# Classes from these packages may be loaded; functions and other callables may not.
TRUSTED_MODULES = ("sklearn", "numpy", "scipy")


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
    """Load a skops model file, refusing types that are not trusted."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises several kinds on a malformed file
        raise InvalidInput(f"not a readable skops model file: {exc}") from None
    extra = set(trusted or ())
    refused = [name for name in found if name not in extra and not _is_trusted_class(name)]
    if refused:
        raise UntrustedModel(sorted(refused))
    return sio.loads(data, trusted=list(found))


def _is_trusted_class(qualified: str) -> bool:
    module_name, _, attribute = qualified.rpartition(".")
    if module_name.split(".")[0] not in TRUSTED_MODULES:
        return False
    try:
        obj = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type)


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
