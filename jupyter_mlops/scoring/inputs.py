"""The model's input built from a /predict body in a few C-level calls, when the
body is plainly valid and every feature is a number.

Nearly every request sends exactly the model's features, each a finite
number. For those, checking the body row by row in Python and building a
DataFrame from a list of dicts cost more than the model itself: here the
checks are set and `map` calls over the instances and their values, the
values go straight into one float64 matrix, and the model gets that matrix
(or a DataFrame around it, when it needs its column names). A body this path
does not take (a missing or unknown feature, a string, a boolean, an
infinity, a huge integer, any other shape) goes to `contract.check_instances`,
which finds the fault and names the field: the two paths accept exactly the
same bodies and give the model the same values.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

from .contract import MAX_ROWS, kind_of

# sklearn warns on every call when a model fitted on a DataFrame gets an array.
FEATURE_NAMES_WARNING = "X does not have valid feature names"


@dataclass(frozen=True)
class NumericInput:
    """How bodies become the model's input for a model whose features are all numbers."""

    names: tuple[str, ...]
    types: frozenset[type]  # the value types taken as they are: float, and int for float columns
    takes_array: bool  # the model scores a bare float64 matrix as it scores the DataFrame
    row_of: Callable[[dict], Any]

    def matrix(self, body: Any) -> Any:
        """The instances of `body` as a float64 matrix, or None when this path does not
        take the body (`check_instances` then decides)."""
        import numpy as np

        if type(body) is not dict or len(body) != 1:
            return None
        instances = body.get("instances")
        if type(instances) is not list or not 0 < len(instances) <= MAX_ROWS:
            return None
        if set(map(type, instances)) != {dict} or set(map(len, instances)) != {len(self.names)}:
            return None
        try:
            rows = list(map(self.row_of, instances))  # a KeyError: a feature is missing
        except KeyError:
            return None
        if len(self.names) == 1:
            rows = [(value,) for value in rows]
        if not set(map(type, chain.from_iterable(rows))) <= self.types:
            return None
        try:
            matrix = np.array(rows, dtype=np.float64)
        except OverflowError:  # an integer past float64's range: named by the slow path
            return None
        if not np.isfinite(matrix).all():
            return None
        return matrix

    def model_input(self, matrix: Any) -> Any:
        """What the model is given for `matrix`: the matrix, or a DataFrame around it."""
        if self.takes_array:
            return matrix
        import pandas as pd

        return pd.DataFrame(matrix, columns=list(self.names), copy=False)


def numeric_input(model: Any, columns: tuple[tuple[str, str | None], ...]) -> NumericInput | None:
    """The fast path for `model` served with `columns`, or None when a feature is not a
    number (text, true/false): then every body takes `check_instances`."""
    kinds = [kind_of(dtype) for _, dtype in columns]
    if not columns or any(kind not in ("number", "any") for kind in kinds):
        return None
    floats_only = all(kind == "any" or dtype.lower().startswith("float")
                      for kind, (_, dtype) in zip(kinds, columns, strict=True))
    if not floats_only and any(kind == "number" for kind in kinds):
        # An integer column keeps integers in the slow path (a DataFrame of int64):
        # only bodies of floats, which both paths pass as they are, go through here.
        types = frozenset({float})
    else:
        types = frozenset({float, int})
    names = tuple(name for name, _ in columns)
    return NumericInput(names=names, types=types, takes_array=_takes_array(model, names),
                        row_of=itemgetter(*names))


def _takes_array(model: Any, names: tuple[str, ...]) -> bool:
    """Whether `model` scores a matrix whose columns are `names` in order exactly as the
    DataFrame of them: it was fitted on those names in that order (or on an array of
    that width), and a probe row gives the same output both ways."""
    import numpy as np
    import pandas as pd

    from ..monitoring.profile import model_outputs

    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and tuple(str(n) for n in fitted) != names:
        return False
    if fitted is None and getattr(model, "n_features_in_", None) != len(names):
        return False
    probe = np.zeros((1, len(names)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from_array = np.asarray(model_outputs(model, probe), dtype=np.float64)
            from_frame = np.asarray(model_outputs(model, pd.DataFrame(probe, columns=names)),
                                    dtype=np.float64)
    except Exception:  # e.g. a column transformer that selects columns by name
        return False
    return from_array.shape == from_frame.shape and bool(
        np.array_equal(from_array, from_frame, equal_nan=True))


def quiet_feature_names_warning() -> None:
    """Silence sklearn's per-call warning about a matrix without feature names; called
    once by the service, whose models get a matrix only when `_takes_array` says the
    columns are the fitted ones, in order."""
    warnings.filterwarnings("ignore", message=FEATURE_NAMES_WARNING, category=UserWarning)
