"""Quality once labels arrive, and calibration of predicted probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    """accuracy, f1 (binary or macro) and, given scores of the positive class, auc."""
    import numpy as np
    from sklearn import metrics

    y = np.asarray(labels)
    p = np.asarray(predicted)
    binary = len(np.unique(np.concatenate([y, p]))) <= 2
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
