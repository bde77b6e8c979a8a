"""Validation gates: `METRIC OP NUMBER` or `METRIC OP ALIAS.METRIC [+|- NUMBER]`.

    accuracy >= 0.9
    recall >= production.recall - 0.01
    brier <= 0.1

Expressions are parsed by a regular expression and compared in Python: never
evaluated as code. Both sides of a comparison must have been evaluated on the
same dataset digest, or the gate fails saying so.
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import GateConfig
from ..errors import InvalidInput, NotFound
from ..hashing import digest_bytes
from ..store.gates import Evaluation, GateResult

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq}
_GATE = re.compile(
    r"\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|==|>|<)\s*"
    r"(?:(?P<number>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
    r"|(?P<alias>[A-Za-z_][A-Za-z0-9_\-]*)\.(?P<other>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\s*(?P<sign>[-+])\s*(?P<margin>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))?)\s*")


@dataclass(frozen=True)
class Gate:
    text: str
    metric: str
    op: str
    number: float | None
    alias: str | None
    other_metric: str | None
    margin: float


def parse_gate(text: str) -> Gate:
    match = _GATE.fullmatch(text)
    if match is None:
        raise InvalidInput(f"gate {text[:100]!r} should look like `accuracy >= 0.9` or "
                           "`recall >= production.recall - 0.01`")
    margin = float(match["margin"]) if match["margin"] else 0.0
    if match["sign"] == "-":
        margin = -margin
    return Gate(text=" ".join(text.split()), metric=match["metric"], op=match["op"],
                number=float(match["number"]) if match["number"] else None,
                alias=match["alias"], other_metric=match["other"], margin=margin)


def gates_for(model: str, configured: Sequence[GateConfig]) -> list[Gate]:
    return [parse_gate(g.check) for g in configured if not g.models or model in g.models]


def gate_set(gates: Sequence[Gate]) -> dict[str, Any]:
    """What a release's evidence records of the gates that judged it: their text, and a
    digest that is the same whenever the gates mean the same (order and spacing aside).

    Approval compares the digest with the gates configured then, so a gate weakened
    for a request and restored afterwards makes that request's evidence stale.
    """
    import json

    canonical = sorted(_canonical(g) for g in gates)
    return {"digest": digest_bytes(json.dumps(canonical).encode()),
            "checks": [g.text for g in gates]}


def _canonical(gate: Gate) -> str:
    right = (repr(gate.number) if gate.alias is None
             else f"{gate.alias}.{gate.other_metric} + {gate.margin!r}")
    return f"{gate.metric} {gate.op} {right}"


def evaluate_gates(name: str, version: int, gates: Sequence[Gate],
                   candidate: Evaluation | None,
                   holders: Mapping[str, tuple[int, Evaluation | None] | None],
                   against: str | None = None) -> list[GateResult]:
    """Judge each gate; `holders[alias]` is (version, its evaluation) or None if unset.

    `against` names the alias whose holder was put in every gate's place (results
    then name it, not the alias the gate text names).
    """
    now = time.time()
    results = []
    for gate in gates:
        compared = against if against is not None and gate.alias else gate.alias

        def result(passed: bool, reason: str, value: float | None = None,
                   threshold: float | None = None, against_version: int | None = None,
                   digest: str | None = None, gate: Gate = gate,
                   compared: str | None = compared) -> GateResult:
            return GateResult(name=name, version=version, gate=gate.text, against=compared,
                              against_version=against_version, passed=passed, value=value,
                              threshold=threshold, dataset_digest=digest, reason=reason,
                              evaluated_at=now)

        if candidate is None or gate.metric not in candidate.metrics:
            results.append(result(False, f"{name}:{version} has no evaluated {gate.metric}"))
            continue
        value = float(candidate.metrics[gate.metric])
        if gate.alias is None:
            threshold = gate.number
            assert threshold is not None
            passed = _OPS[gate.op](value, threshold)
            results.append(result(passed, f"{gate.metric} {value:.4g} {gate.op} {threshold:g}: "
                                  f"{'pass' if passed else 'fail'}", value, threshold,
                                  digest=candidate.dataset_digest))
            continue
        holder = holders.get(gate.alias)
        if holder is None:
            results.append(result(True, f"no version holds {compared!r} yet: nothing to "
                                  "compare with", value, digest=candidate.dataset_digest))
            continue
        holder_version, holder_eval = holder
        if holder_eval is None or gate.other_metric not in holder_eval.metrics:
            results.append(result(False, f"{compared} ({name}:{holder_version}) has no "
                                  f"evaluated {gate.other_metric}", value,
                                  against_version=holder_version))
            continue
        if holder_eval.dataset_digest != candidate.dataset_digest:
            results.append(result(False, "the two sides were evaluated on different data ("
                                  f"{candidate.dataset_digest[:19]} vs "
                                  f"{holder_eval.dataset_digest[:19]}); evaluate both on the "
                                  "same data", value, against_version=holder_version))
            continue
        threshold = float(holder_eval.metrics[gate.other_metric]) + gate.margin
        passed = _OPS[gate.op](value, threshold)
        results.append(result(passed, f"{gate.metric} {value:.4g} {gate.op} {compared}."
                              f"{gate.other_metric} {threshold:.4g}: "
                              f"{'pass' if passed else 'fail'}", value, threshold,
                              holder_version, candidate.dataset_digest))
    return results


def compute_metrics(model: Any, X: Any, y: Any) -> dict[str, float]:
    """Standard metrics of a fitted estimator on (X, y)."""
    import numpy as np
    from sklearn import metrics
    from sklearn.base import is_classifier

    predicted = model.predict(X)
    if not is_classifier(model):
        return {"mae": float(metrics.mean_absolute_error(y, predicted)),
                "rmse": float(np.sqrt(metrics.mean_squared_error(y, predicted))),
                "r2": float(metrics.r2_score(y, predicted))}
    result = {"accuracy": float(metrics.accuracy_score(y, predicted))}
    classes = np.unique(y)
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    result["precision"] = float(metrics.precision_score(y, predicted, average=average,
                                                        zero_division=0))
    result["recall"] = float(metrics.recall_score(y, predicted, average=average,
                                                  zero_division=0))
    result["f1"] = float(metrics.f1_score(y, predicted, average=average, zero_division=0))
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        result["log_loss"] = float(metrics.log_loss(y, proba, labels=model.classes_))
        if binary:
            positive = proba[:, 1]
            result["roc_auc"] = float(metrics.roc_auc_score(y, positive))
            result["brier"] = float(metrics.brier_score_loss(y, positive,
                                                             pos_label=model.classes_[1]))
        else:
            result["roc_auc"] = float(metrics.roc_auc_score(y, proba, multi_class="ovr"))
    return result


def load_evaluation_data(path: Path, target: str) -> tuple[Any, Any]:
    """(X, y) from a CSV or Parquet file with a target column."""
    X, y, _ = read_evaluation_data(path, target)
    return X, y


def read_evaluation_data(path: Path, target: str) -> tuple[Any, Any, str]:
    """(X, y, digest) from a CSV or Parquet file with a target column.

    The bytes are read once and both parsed and digested, so the digest names
    exactly the data the metrics come from, even if the file changes meanwhile.
    """
    import io

    import pandas as pd

    if not path.is_file():
        raise NotFound(f"no evaluation data at {path}")
    data = path.read_bytes()
    source = io.BytesIO(data)
    try:
        frame = (pd.read_parquet(source) if path.suffix in (".parquet", ".pq")
                 else pd.read_csv(source))
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"evaluation data {path} could not be read: {exc}") from None
    if target not in frame.columns:
        raise InvalidInput(f"evaluation data {path} has no target column {target!r} "
                           f"(columns: {', '.join(map(str, frame.columns[:20]))})")
    return frame.drop(columns=[target]), frame[target], digest_bytes(data)
