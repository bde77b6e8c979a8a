"""Quality once labels arrive, and calibration of predicted probabilities.

Which metrics apply is the model's business, not the labels': `measure` takes
the version's task (see `task.py`) and scores accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .task import ModelTask

ECE_BINS = 10


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    fraction_positive: float | None


@dataclass(frozen=True)
class Calibration:
    brier: float
    ece: float
    curve: tuple[ReliabilityBin, ...]


def classification_quality(labels: Any, predicted: Any, scores: Any = None) -> dict[str, float]:
    """accuracy, f1 (of class 1 for 0/1 labels, else the macro average over classes) and,
    given scores of the positive class, auc."""
    import numpy as np
    from sklearn import metrics

    y = np.asarray(labels)
    p = np.asarray(predicted)
    binary = set(np.unique(np.concatenate([y, p])).tolist()) <= {0, 1}
    result = {"accuracy": float(metrics.accuracy_score(y, p)),
              "f1": float(metrics.f1_score(y, p, average="binary" if binary else "macro",
                                           zero_division=0))}
    if scores is not None and len(np.unique(y)) == 2:
        result["auc"] = float(metrics.roc_auc_score(y, np.asarray(scores, dtype=float)))
    return result


def regression_quality(labels: Any, predicted: Any) -> dict[str, float]:
    import numpy as np

    y = np.asarray(labels, dtype=float)
    p = np.asarray(predicted, dtype=float)
    return {"mae": float(np.abs(y - p).mean()), "rmse": float(np.sqrt(((y - p) ** 2).mean()))}


def calibration(labels: Any, probabilities: Any, bins: int = ECE_BINS) -> Calibration:
    """Brier score, expected calibration error (equal-width bins) and the reliability curve
    of binary labels (0/1) against predicted probabilities of 1."""
    import numpy as np

    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    brier = float(((p - y) ** 2).mean())
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    curve = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        if count:
            confidence, accuracy = float(p[mask].mean()), float(y[mask].mean())
            ece += count / y.size * abs(accuracy - confidence)
            curve.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), count,
                                        confidence, accuracy))
        else:
            curve.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), 0, None, None))
    return Calibration(brier=brier, ece=float(ece), curve=tuple(curve))


@dataclass(frozen=True)
class Scored:
    """Labelled predictions scored for one model task."""

    quality: dict[str, float]
    calibration: Calibration | None
    correct: Any  # per row: 1.0 right, 0.0 wrong, NaN (regression, or label not usable)
    brier: Any  # per row: squared error of the probability, NaN when there is none
    note: str  # why some or all rows were not scored, or ""


def measure(task: ModelTask | None, labels: Any, outputs: Any, why: str = "") -> Scored:
    """Quality of `outputs` (the log's output column) against `labels` for `task`:
    accuracy, F1 (and AUC and calibration for probabilities of a binary classifier)
    for a classifier, MAE and RMSE for a regressor; no metrics when the task is
    unknown (`why` says why). Labels that don't fit the task (stored before labels
    were checked) are left out and counted in `note`."""
    import numpy as np
    import pandas as pd

    from .task import REGRESSION

    scores = np.asarray(outputs, dtype=float)
    nothing = np.full(scores.size, np.nan)
    if task is None:
        return Scored({}, None, nothing, nothing, f"no quality metrics: {why}" if why else "")
    values = pd.Series(labels).reset_index(drop=True)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    if task.kind == REGRESSION:
        usable = ~np.isnan(numbers)
        quality = regression_quality(numbers[usable], scores[usable]) if usable.any() else {}
        return Scored(quality, None, nothing, nothing, _left_out(usable))
    if task.output == "probability" and task.classes is not None:
        numeric = task.numeric_classes
        if numeric is not None:
            usable = np.isin(numbers, numeric)
            positive = numbers == numeric[1]
        else:
            text = values.map(str).to_numpy()
            usable = np.isin(text, [str(c) for c in task.classes])
            positive = text == str(task.classes[1])
        y = positive[usable].astype(int)
        p = scores[usable]
        correct = np.where(usable, ((scores >= 0.5) == positive).astype(float), np.nan)
        brier = np.where(usable, (scores - positive) ** 2, np.nan)
        if not usable.any():
            return Scored({}, None, correct, brier, _left_out(usable))
        return Scored(classification_quality(y, (p >= 0.5).astype(int), p),
                      calibration(y, p), correct, brier, _left_out(usable))
    # The output is the predicted class, logged as a number.
    usable = ~np.isnan(numbers)
    if task.numeric_classes is not None:
        usable &= np.isin(numbers, task.numeric_classes)
    correct = np.where(usable, (numbers == scores).astype(float), np.nan)
    quality = (classification_quality(numbers[usable], scores[usable]) if usable.any()
               else {})
    return Scored(quality, None, correct, nothing, _left_out(usable))


def _left_out(usable: Any) -> str:
    missing = int(usable.size - usable.sum())
    return f"{missing} labels don't fit the model and were left out" if missing else ""
