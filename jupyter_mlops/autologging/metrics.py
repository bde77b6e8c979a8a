"""Training metrics of a fitted estimator, computed with numpy.

`sklearn.metrics` would give the same numbers, but its input checks cost about
2 ms per metric (12 ms for a classifier's six on 1,000 rows, more than the
whole budget of a recorded fit); here one confusion matrix gives accuracy,
precision, recall and F1, and the tests compare every figure with
`sklearn.metrics`. Averages over classes are weighted by support, as
`average="weighted"`; ROC AUC is one-vs-rest for more than two classes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

CLASSIFIER_METRICS = ("accuracy", "precision", "recall", "f1", "log_loss", "roc_auc")
REGRESSOR_METRICS = ("mae", "rmse", "r2")
PREFIX = "training_"


def wanted(name: str, exclude: Iterable[str]) -> bool:
    """False when `name`, with or without the `training_` prefix, matches one of the
    `exclude` patterns (`fnmatch`: `"roc_auc"`, `"training_*"`, `"*"`)."""
    return not any(fnmatch.fnmatchcase(name, pattern)
                   or fnmatch.fnmatchcase(PREFIX + name, pattern) for pattern in exclude)


def training_metrics(estimator: Any, X: Any, y: Any, exclude: Iterable[str] = ()
                     ) -> dict[str, float]:
    """`training_<metric>` of `estimator` on the data it was fitted on; {} for an estimator
    that is neither a classifier nor a regressor, or a fit without `y`."""
    from sklearn.base import is_classifier, is_regressor

    exclude = tuple(exclude)
    if y is None:
        return {}
    if is_classifier(estimator):
        names = [n for n in CLASSIFIER_METRICS if wanted(n, exclude)]
        values = classifier_metrics(estimator, X, y, names) if names else {}
    elif is_regressor(estimator):
        names = [n for n in REGRESSOR_METRICS if wanted(n, exclude)]
        values = regressor_metrics(estimator.predict(X), y) if names else {}
        values = {k: v for k, v in values.items() if k in names}
    else:
        return {}
    return {PREFIX + name: value for name, value in values.items()}


def classifier_metrics(estimator: Any, X: Any, y: Any, names: list[str]) -> dict[str, float]:
    import numpy as np

    truth = np.asarray(y)
    if truth.ndim != 1:
        return {}  # multi-label or multi-output: no single confusion matrix
    classes = np.asarray(getattr(estimator, "classes_", np.unique(truth)))
    if classes.ndim != 1 or len(classes) < 2:
        return {}
    values: dict[str, float] = {}
    if {"accuracy", "precision", "recall", "f1"} & set(names):
        values.update(_confusion_metrics(truth, np.asarray(estimator.predict(X)), classes))
    if {"log_loss", "roc_auc"} & set(names) and hasattr(estimator, "predict_proba"):
        values.update(_probability_metrics(truth, np.asarray(estimator.predict_proba(X)),
                                           classes))
    return {name: values[name] for name in names if name in values}


def _class_index(values: Any, classes: Any) -> Any:
    """Each value's position in `classes` (sorted, as sklearn's `classes_`); -1 if absent."""
    import numpy as np

    order = np.argsort(classes, kind="stable")
    ordered = classes[order]
    positions = np.searchsorted(ordered, values)
    positions = np.clip(positions, 0, len(classes) - 1)
    found = ordered[positions] == values
    return np.where(found, order[positions], -1)


def _confusion_metrics(truth: Any, predicted: Any, classes: Any) -> dict[str, float]:
    import numpy as np

    k = len(classes)
    t, p = _class_index(truth, classes), _class_index(predicted, classes)
    known = (t >= 0) & (p >= 0)
    matrix = np.bincount(t[known] * k + p[known], minlength=k * k).reshape(k, k)
    n = len(truth)
    hits = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1).astype(float)
    predicted_count = matrix.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, hits / predicted_count, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = support.sum()
    weights = support / total if total else support
    return {"accuracy": float(hits.sum() / n) if n else 0.0,
            "precision": float(weights @ precision), "recall": float(weights @ recall),
            "f1": float(weights @ f1)}


def _probability_metrics(truth: Any, proba: Any, classes: Any) -> dict[str, float]:
    import numpy as np

    if proba.ndim != 2 or proba.shape[1] != len(classes):
        return {}
    index = _class_index(truth, classes)
    if (index < 0).any():
        return {}
    eps = np.finfo(proba.dtype if proba.dtype.kind == "f" else float).eps
    rows = proba / proba.sum(axis=1, keepdims=True)
    chosen = np.clip(rows[np.arange(len(index)), index], eps, 1 - eps)
    values = {"log_loss": float(-np.mean(np.log(chosen)))}
    if len(classes) == 2:
        auc = _binary_auc(index == 1, proba[:, 1])
    else:
        support = np.bincount(index, minlength=len(classes)).astype(float)
        aucs = [_binary_auc(index == c, proba[:, c]) for c in range(len(classes))]
        usable = [(a, s) for a, s in zip(aucs, support, strict=True) if a is not None]
        auc = (sum(a * s for a, s in usable) / sum(s for _, s in usable)) if usable else None
    if auc is not None:
        values["roc_auc"] = float(auc)
    return values


def _binary_auc(positive: Any, score: Any) -> float | None:
    """ROC AUC as the Mann-Whitney statistic, ties counted half; None with one class."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(score)
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def regressor_metrics(predicted: Any, y: Any) -> dict[str, float]:
    """MAE, RMSE and R2 (averaged over outputs, as `multioutput="uniform_average"`)."""
    import numpy as np

    truth = np.asarray(y, dtype=float)
    predicted = np.asarray(predicted, dtype=float).reshape(truth.shape)
    error = truth - predicted
    if truth.ndim == 1:
        truth, error = truth[:, None], error[:, None]
    mae = np.abs(error).mean(axis=0)
    rmse = np.sqrt((error ** 2).mean(axis=0))
    total = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    residual = (error ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(total > 0, 1 - residual / total, np.where(residual == 0, 1.0, 0.0))
    return {"mae": float(mae.mean()), "rmse": float(rmse.mean()), "r2": float(r2.mean())}
