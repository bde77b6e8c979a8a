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
from .quality import Calibration, measure
from .task import TaskFinder


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
    task: str | None = None  # classification | regression, from the model; None: unknown
    labels_corrected: int = 0  # labelled rows whose label a later upload changed
    quality_note: str = ""  # why there are no metrics, or rows left out of them


@dataclass(frozen=True)
class TimeBucket:
    start: float
    rows: int
    error_rate: float
    latency_p95_ms: float
    version: int | None
    labelled: int = 0
    accuracy: float | None = None  # of the labelled rows of classifiers (0.5 on a probability)
    brier: float | None = None  # when the outputs are probabilities of a binary classifier


@dataclass(frozen=True)
class MonitorReport:
    name: str
    since: float | None
    until: float
    rows: int
    versions: tuple[VersionReport, ...]
    timeline: tuple[TimeBucket, ...]
    checks: tuple[Check, ...] = field(default=())
    drift_measured: bool = True  # False: built with `drift=False`, drift not yet known

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


# What a report without drift reads of the log: not the inputs (most of its columns).
_SUMMARY_COLUMNS = ("request_id", "version", "status", "output", "latency_ms", "at")


def build_report(project: Project, store: Store, name: str, *, since: float | None = None,
                 last: int | None = None, buckets: int = 24, drift: bool = True
                 ) -> MonitorReport:
    """The report of `name`'s logged rows (at or after `since`, or the `last` N).
    `drift=False` leaves drift out and reads no input column (most of the log: on a
    million rows, a fifth of the time), for a summary shown before drift is known."""
    settings: MonitoringConfig = project.monitoring
    thresholds = DriftThresholds(alpha=settings.alpha, psi_threshold=settings.psi_threshold,
                                 js_threshold=settings.js_threshold, min_rows=settings.min_rows)
    log = PredictionLog(project)
    frame = log.read(store, name, since=since, last=last,
                     columns=None if drift else _SUMMARY_COLUMNS)
    labels = log.labels(store, name)
    tasks = TaskFinder(project, store, name)
    versions = []
    checks: list[Check] = []
    scored_rows = []  # (at, correct, brier) of labelled rows, for the timeline
    labelled = _labelled(frame, labels)
    status_ok = (frame["status"] == "ok").to_numpy(dtype=bool, na_value=False) \
        if len(frame) else labelled
    input_columns = [c for c in frame.columns if c.startswith(INPUT_PREFIX)]
    for version in sorted(int(v) for v in frame["version"].unique()) if len(frame) else []:
        mine = (frame["version"] == version).to_numpy()
        ok = mine & status_ok
        rows, errors = int(mine.sum()), int(mine.sum() - ok.sum())
        profile = store.predictions.profile(name, version) if version >= 0 else None
        drifts: tuple[DriftResult, ...] = ()
        if profile and drift:  # columns taken one by one: never a copy of the whole frame
            inputs = {c[len(INPUT_PREFIX):]: _rows(frame[c], ok) for c in input_columns}
            drifts = tuple(drift_report(profile, inputs, _rows(frame["output"], ok),
                                        thresholds))
        joined = frame.loc[ok & labelled, ["request_id", "at", "output"]].merge(
            labels, on="request_id", how="inner")
        task, why = tasks.task(version) if len(joined) else (None, "")
        scored = measure(task, joined["label"], joined["output"], why)
        quality, calib = scored.quality, scored.calibration
        if len(joined):
            scored_rows.append((joined["at"].to_numpy(dtype=float), scored.correct,
                                scored.brier))
        report = VersionReport(
            version=None if version < 0 else version, release=_release_for(store, name, version),
            rows=rows, errors=errors, error_rate=errors / rows if rows else 0.0,
            latency_ms=_latency(_rows(frame["latency_ms"], mine)), drift=drifts,
            labelled=len(joined),
            quality=quality, calibration=calib, task=None if task is None else task.kind,
            labels_corrected=int(joined["corrected"].sum()) if len(joined) else 0,
            quality_note=scored.note)
        versions.append(report)
        label = f"{name}:{version}"
        checks.append(Check(f"{label} error rate", report.error_rate <= settings.max_error_rate,
                            f"{report.error_rate:.2%} (max {settings.max_error_rate:.2%})"))
        checks.append(Check(f"{label} latency p95",
                            report.latency_ms["p95"] <= settings.max_latency_p95_ms,
                            f"{report.latency_ms['p95']:.1f} ms (max "
                            f"{settings.max_latency_p95_ms:g} ms)"))
        for result in drifts:
            checks.append(Check(f"{label} drift {result.feature}", not result.drifted,
                                f"{result.test}: {result.detail}"))
        if calib is not None:
            checks.append(Check(f"{label} calibration ECE", calib.ece <= settings.max_ece,
                                f"ECE {calib.ece:.3f} (max {settings.max_ece:g})"))
        if settings.min_accuracy is not None and "accuracy" in quality:
            checks.append(Check(f"{label} accuracy", quality["accuracy"] >= settings.min_accuracy,
                                f"{quality['accuracy']:.3f} (min {settings.min_accuracy:g})"))
    return MonitorReport(name=name, since=since, until=time.time(), rows=len(frame),
                         versions=tuple(versions), timeline=_timeline(frame, scored_rows, buckets),
                         checks=tuple(checks), drift_measured=drift)


def _rows(column: Any, mask: Any) -> Any:
    """The rows of `column` (a Series) where `mask` is set; the column itself if all are."""
    return column if mask.all() else column[mask]


def _labelled(frame: Any, labels: Any) -> Any:
    """Which rows of `frame` have a label (a hash lookup in Arrow: pandas' `isin` and
    `merge` on a million request ids take several times longer)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(frame) == 0 or len(labels) == 0:
        return np.zeros(len(frame), dtype=bool)
    found = pc.is_in(pa.array(frame["request_id"], type=pa.string()),
                     value_set=pa.array(labels["request_id"], type=pa.string()))
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def _timeline(frame: Any, scored: list[tuple[Any, Any, Any]],
              buckets: int) -> tuple[TimeBucket, ...]:
    """Rows, error rate, latency and (of labelled rows) accuracy and Brier score in
    `buckets` equal slices of the window; `scored` holds (at, correct, brier) arrays."""
    import numpy as np

    if len(frame) == 0:
        return ()
    start, end = float(frame["at"].min()), float(frame["at"].max())
    width = max((end - start) / buckets, 1e-9)

    def bucket_of(at: Any) -> Any:
        return np.minimum(((np.asarray(at, dtype=float) - start) / width).astype(int),
                          buckets - 1)

    index = bucket_of(frame["at"].to_numpy())
    if scored:
        at = np.concatenate([s[0] for s in scored])
        correct = np.concatenate([s[1] for s in scored])
        brier = np.concatenate([s[2] for s in scored])
        labelled_index = bucket_of(at)
    else:
        correct = brier = labelled_index = np.zeros(0)
    # Rows by bucket, in order (the log is in time order: usually sorted already).
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(buckets + 1))
    latency = frame["latency_ms"].to_numpy(dtype=float)[order]
    failed = (frame["status"] != "ok").to_numpy(dtype=bool, na_value=True)[order]
    version = frame["version"].to_numpy()[order]
    result = []
    for b in range(buckets):
        rows = slice(bounds[b], bounds[b + 1])
        if bounds[b] == bounds[b + 1]:
            continue
        values, counts = np.unique(version[rows], return_counts=True)
        common = int(values[np.argmax(counts)])  # the smallest of the most common
        mine = labelled_index == b
        right, squared = correct[mine], brier[mine]
        right, squared = right[~np.isnan(right)], squared[~np.isnan(squared)]
        result.append(TimeBucket(
            start=start + b * width, rows=int(bounds[b + 1] - bounds[b]),
            error_rate=float(failed[rows].mean()),
            latency_p95_ms=float(np.percentile(latency[rows], 95)),
            version=common if common >= 0 else None, labelled=int(mine.sum()),
            accuracy=float(right.mean()) if right.size else None,
            brier=float(squared.mean()) if squared.size else None))
    return tuple(result)


def report_lines(report: MonitorReport) -> list[str]:
    """The report as `mlops monitor report` prints it (the team server sends these too)."""
    from ..views import text_table

    lines = [f"{report.name}: {report.rows} predictions"]
    for v in report.versions:
        release = (f", released by {v.release.decided_by} (request #{v.release.request_id})"
                   if v.release else "")
        lines.append(f"\nversion {v.version}{release}: {v.rows} rows, {v.errors} errors "
                     f"({v.error_rate:.2%}), latency p50 {v.latency_ms['p50']:.1f} ms, p95 "
                     f"{v.latency_ms['p95']:.1f} ms, p99 {v.latency_ms['p99']:.1f} ms")
        if v.drift:
            lines.append(text_table(["feature", "test", "statistic", "threshold", "drift"],
                                    [[d.feature, d.test, "" if d.statistic is None else
                                      f"{d.statistic:.4g}", f"{d.threshold:g}",
                                      "DRIFT" if d.drifted else "ok"] for d in v.drift]))
        corrected = (f", {v.labels_corrected} corrected by a later upload"
                     if v.labels_corrected else "")
        if v.quality:
            lines.append(f"quality ({v.task}): "
                         + ", ".join(f"{k} {val:.4g}" for k, val in v.quality.items())
                         + f" ({v.labelled} labelled{corrected})")
        elif v.labelled:
            lines.append(f"quality: none ({v.labelled} labelled{corrected})")
        if v.quality_note:
            lines.append(f"  {v.quality_note}")
        if v.calibration:
            lines.append(f"calibration: brier {v.calibration.brier:.4g}, "
                         f"ECE {v.calibration.ece:.4g}")
    return lines
