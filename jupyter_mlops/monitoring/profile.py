"""Reference profiles: what a model's training data looked like, feature by feature.

A profile is plain JSON stored with the model version:

    {"version": 1, "rows": 426,
     "features": {"age": {"type": "numeric", "quantiles": [...101 values...],
                          "bins": [...edges...], "counts": [...], "missing": 0.0},
                  "plan": {"type": "categorical", "frequencies": {"a": 0.6, ...},
                           "missing": 0.01}},
     "prediction": {...the same, for the model's output on that data...},
     "task": {"kind": "classification", "output": "probability", "classes": [0, 1]}}

101 quantiles let drift tests rebuild the reference distribution function
without keeping the training rows. `task` (since profile version 2) says what
the model predicts, read from the model itself (`model_task`), so that quality
is measured the right way whatever the labels look like.
"""

from __future__ import annotations

from typing import Any

PROFILE_VERSION = 2
QUANTILES = 101
BINS = 10
MAX_CATEGORIES = 50


def feature_profile(values: Any) -> dict[str, Any]:
    """Profile of one column (a pandas Series)."""
    import numpy as np
    import pandas as pd

    series = pd.Series(values)
    missing = float(series.isna().mean()) if len(series) else 0.0
    present = series.dropna()
    if pd.api.types.is_bool_dtype(present) or not pd.api.types.is_numeric_dtype(present):
        counts = present.astype(str).value_counts(normalize=True)
        top = counts.iloc[:MAX_CATEGORIES]
        frequencies = {str(k): float(v) for k, v in top.items()}
        other = float(counts.iloc[MAX_CATEGORIES:].sum())
        if other > 0:
            frequencies["__other__"] = other
        return {"type": "categorical", "frequencies": frequencies, "missing": missing}
    data = present.to_numpy(dtype=float)
    if data.size == 0:
        return {"type": "numeric", "quantiles": [], "bins": [], "counts": [],
                "missing": missing}
    # Quantiles that are values of the data ("inverted CDF"), so that features with
    # ties (counts, rounded measurements) keep their steps.
    quantiles = np.quantile(data, np.linspace(0, 1, QUANTILES), method="inverted_cdf")
    edges = np.unique(np.quantile(data, np.linspace(0, 1, BINS + 1)))
    counts = np.histogram(data, bins=edges)[0] if edges.size > 1 else np.array([data.size])
    return {"type": "numeric", "quantiles": [float(q) for q in quantiles],
            "bins": [float(e) for e in edges], "counts": [int(c) for c in counts],
            "missing": missing, "mean": float(data.mean()), "std": float(data.std())}


def build_profile(frame: Any, predictions: Any = None,
                  task: dict[str, Any] | None = None) -> dict[str, Any]:
    """Profile every column of a DataFrame, and the predictions made on it; `task` is
    `model_task(model)`."""
    profile: dict[str, Any] = {"version": PROFILE_VERSION, "rows": int(len(frame)),
                               "features": {str(c): feature_profile(frame[c])
                                            for c in frame.columns}}
    if predictions is not None:
        profile["prediction"] = feature_profile(predictions)
    if task is not None:
        profile["task"] = task
    return profile


def model_task(model: Any) -> dict[str, Any] | None:
    """What the model predicts, as JSON, or None when it says neither:

    - a classifier (it has `classes_`, or scikit-learn calls it one):
      `{"kind": "classification", "output": "probability" | "label", "classes": [...]}`,
      where `output` says what `model_outputs` logs: P(`classes[1]`) for a binary
      classifier with `predict_proba`, else the predicted class (`classes` is None
      when the model does not list them);
    - a regressor: `{"kind": "regression", "output": "value"}`.
    """
    import numpy as np

    classes = getattr(model, "classes_", None)  # a Pipeline answers for its last step
    if classes is not None:
        listed = np.asarray(classes)
        if listed.ndim != 1:  # several outputs: not one column of the log
            return None
        values = listed.tolist()
        probability = hasattr(model, "predict_proba") and len(values) == 2
        return {"kind": "classification", "output": "probability" if probability else "label",
                "classes": values}
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        return {"kind": "classification", "output": "label", "classes": None}
    if is_regressor(model):
        return {"kind": "regression", "output": "value"}
    return None


def model_outputs(model: Any, frame: Any) -> Any:
    """What we monitor of a model's output: P(positive) for a binary classifier with
    probabilities, else the prediction itself."""
    import numpy as np

    if hasattr(model, "predict_proba") and len(getattr(model, "classes_", [])) == 2:
        return np.asarray(model.predict_proba(frame))[:, 1]
    return np.asarray(model.predict(frame))
