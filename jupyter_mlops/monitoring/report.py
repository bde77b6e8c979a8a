"""A monitoring report of one model over a window of logged predictions, per
version: traffic, errors, latency, input and output drift, quality, calibration,
and the checks that `mlops monitor check` turns into an exit code."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..config import MonitoringConfig
from ..project import Project
from ..store import Store
from .drift import DriftResult, DriftThresholds, drift_report
from .predlog import INPUT_PREFIX, PredictionLog
from .quality import Calibration, calibration, classification_quality, regression_quality


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Release:
    request_id: int
    alias: str
    decided_by: str | None
    decided_at: float | None


@dataclass(frozen=True)
class VersionReport:
    version: int | None
    release: Release | None  # the approval that put this version in force, if any
    rows: int
    errors: int
    error_rate: float
    latency_ms: dict[str, float]  # p50, p95, p99
    drift: tuple[DriftResult, ...]
    labelled: int
    quality: dict[str, float]
    calibration: Calibration | None


@dataclass(frozen=True)
class TimeBucket:
    start: float
    rows: int
    error_rate: float
    latency_p95_ms: float
    version: int | None
    labelled: int = 0
    accuracy: float | None = None  # of the labelled rows, at a 0.5 threshold for scores
    brier: float | None = None  # when the outputs are probabilities of a 0/1 label


@dataclass(frozen=True)
class MonitorReport:
    name: str
    since: float | None
    until: float
    rows: int
    versions: tuple[VersionReport, ...]
    timeline: tuple[TimeBucket, ...]
    checks: tuple[Check, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)


def _release_for(store: Store, name: str, version: int | None) -> Release | None:
    if version is None:
        return None
    for request in store.releases.list("approved", name, limit=500):
        if request.version == version:
            return Release(request.id, request.alias, request.decided_by, request.decided_at)
    return None


def _latency(values: Any) -> dict[str, float]:
    import numpy as np

    if len(values) == 0:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    q = np.percentile(np.asarray(values, dtype=float), [50, 95, 99])
    return {"p50": float(q[0]), "p95": float(q[1]), "p99": float(q[2])}


def build_report(project: Project, store: Store, name: str, *, since: float | None = None,
                 last: int | None = None, buckets: int = 24) -> MonitorReport:
    import numpy as np

    settings: MonitoringConfig = project.monitoring
    thresholds = DriftThresholds(alpha=settings.alpha, psi_threshold=settings.psi_threshold,
                                 js_threshold=settings.js_threshold, min_rows=settings.min_rows)
    log = PredictionLog(project)
    frame = log.read(store, name, since=since, last=last)
    labels = log.labels(store, name)
    versions = []
    checks: list[Check] = []
    for version in sorted({int(v) for v in frame["version"]}) if len(frame) else []:
        part = frame[frame["version"] == version]
        ok = part[part["status"] == "ok"]
        errors = int((part["status"] != "ok").sum())
        profile = store.predictions.profile(name, version) if version >= 0 else None
        inputs = ok[[c for c in ok.columns if c.startswith(INPUT_PREFIX)]]
        inputs.columns = [c[len(INPUT_PREFIX):] for c in inputs.columns]
        drift = tuple(drift_report(profile, inputs, ok["output"], thresholds)) if profile else ()
        joined = ok.merge(labels, on="request_id", how="inner") if len(labels) else ok.iloc[:0]
        quality: dict[str, float] = {}
        calib = None
        if len(joined):
            y = joined["label"].to_numpy()
            scores = joined["output"].to_numpy(dtype=float)
            probabilistic = set(np.unique(y)).issubset({0, 1}) and scores.min() >= 0 \
                and scores.max() <= 1 and not np.all(np.isin(scores, [0.0, 1.0]))
            if probabilistic:
                quality = classification_quality(y, (scores >= 0.5).astype(int), scores)
                calib = calibration(y, scores)
            elif np.all(np.equal(np.mod(y.astype(float), 1), 0)):
                quality = classification_quality(y, scores.round().astype(int))
            else:
                quality = regression_quality(y, scores)
        report = VersionReport(
            version=None if version < 0 else version, release=_release_for(store, name, version),
            rows=len(part), errors=errors, error_rate=errors / len(part) if len(part) else 0.0,
            latency_ms=_latency(part["latency_ms"]), drift=drift, labelled=len(joined),
            quality=quality, calibration=calib)
        versions.append(report)
        label = f"{name}:{version}"
        checks.append(Check(f"{label} error rate", report.error_rate <= settings.max_error_rate,
                            f"{report.error_rate:.2%} (max {settings.max_error_rate:.2%})"))
        checks.append(Check(f"{label} latency p95",
                            report.latency_ms["p95"] <= settings.max_latency_p95_ms,
                            f"{report.latency_ms['p95']:.1f} ms (max "
                            f"{settings.max_latency_p95_ms:g} ms)"))
        for result in drift:
            checks.append(Check(f"{label} drift {result.feature}", not result.drifted,
                                f"{result.test}: {result.detail}"))
        if calib is not None:
            checks.append(Check(f"{label} calibration ECE", calib.ece <= settings.max_ece,
                                f"ECE {calib.ece:.3f} (max {settings.max_ece:g})"))
        if settings.min_accuracy is not None and "accuracy" in quality:
            checks.append(Check(f"{label} accuracy", quality["accuracy"] >= settings.min_accuracy,
                                f"{quality['accuracy']:.3f} (min {settings.min_accuracy:g})"))
    return MonitorReport(name=name, since=since, until=time.time(), rows=len(frame),
                         versions=tuple(versions), timeline=_timeline(frame, labels, buckets),
                         checks=tuple(checks))


def _timeline(frame: Any, labels: Any, buckets: int) -> tuple[TimeBucket, ...]:
    import numpy as np

    if len(frame) == 0:
        return ()
    if len(labels):
        frame = frame.merge(labels, on="request_id", how="left")
    start, end = float(frame["at"].min()), float(frame["at"].max())
    width = max((end - start) / buckets, 1e-9)
    index = np.minimum(((frame["at"].to_numpy() - start) / width).astype(int), buckets - 1)
    result = []
    for b in range(buckets):
        part = frame[index == b]
        if len(part) == 0:
            continue
        versions = part["version"].mode()
        accuracy = brier = None
        labelled = part[part["status"] == "ok"]
        labelled = labelled[labelled["label"].notna()] if "label" in labelled else labelled[:0]
        if len(labelled):
            y = labelled["label"].to_numpy(dtype=float)
            scores = labelled["output"].to_numpy(dtype=float)
            accuracy = float(((scores >= 0.5) == (y >= 0.5)).mean())
            if set(np.unique(y)) <= {0.0, 1.0} and scores.min() >= 0 and scores.max() <= 1:
                brier = float(((scores - y) ** 2).mean())
        result.append(TimeBucket(
            start=start + b * width, rows=len(part),
            error_rate=float((part["status"] != "ok").mean()),
            latency_p95_ms=float(np.percentile(part["latency_ms"], 95)),
            version=int(versions.iloc[0]) if len(versions) and int(versions.iloc[0]) >= 0
            else None, labelled=len(labelled), accuracy=accuracy, brier=brier))
    return tuple(result)
