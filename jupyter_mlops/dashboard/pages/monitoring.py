"""Monitoring of one model: traffic, latency and errors over time, drift per
feature (reference against current distribution), quality and calibration,
each tied to the version in force and the release that put it there."""

from __future__ import annotations

import time
from typing import Any

import panel as pn

from ...errors import MlopsError
from ...monitoring.drift import DriftResult
from ...monitoring.predlog import INPUT_PREFIX, PredictionLog, parse_window
from ...monitoring.report import MonitorReport, TimeBucket, build_report
from ...views import format_time, html_table
from ..context import DashboardContext
from .layout import frame, message, text

WINDOWS = {"last hour": "1h", "last day": "1d", "last week": "7d", "everything": None}


def _line_chart(points: list[tuple[float, float]], labels: list[str], title: str) -> str:
    """A small SVG line chart; `labels` name each point (the version in force)."""
    if not points:
        return ""
    width, height = 480, 120
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs) or 1
    y1 = max(ys) or 1.0

    def sx(x: float) -> float:
        return 30 + (x - x0) / ((x1 - x0) or 1) * (width - 40)

    def sy(y: float) -> float:
        return height - 20 - y / y1 * (height - 35)

    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    marks = "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"><title>{text(label)}: '
                    f'{y:.4g}</title></circle>' for (x, y), label in zip(points, labels,
                                                                         strict=True))
    return (f'<figure><figcaption>{text(title)} (max {y1:.4g})</figcaption>'
            f'<svg width="{width}" height="{height}" role="img" aria-label="{text(title)}">'
            f'<polyline points="{line}" fill="none" stroke="#1565c0" stroke-width="2"/>'
            f'{marks}</svg></figure>')


def _timeline(report: MonitorReport) -> str:
    buckets: list[TimeBucket] = list(report.timeline)
    labels = [f"{format_time(b.start)}, version {b.version}" for b in buckets]
    labelled = [(b, label) for b, label in zip(buckets, labels, strict=True) if b.labelled]
    quality = ""
    if labelled:
        quality = _line_chart([(b.start, b.accuracy or 0.0) for b, _ in labelled],
                              [label for _, label in labelled], "accuracy (labelled rows)")
        briers = [(b, label) for b, label in labelled if b.brier is not None]
        if briers:
            quality += _line_chart([(b.start, b.brier or 0.0) for b, _ in briers],
                                   [label for _, label in briers], "Brier score")
    return (_line_chart([(b.start, b.latency_p95_ms) for b in buckets], labels,
                        "latency p95 (ms)")
            + _line_chart([(b.start, b.error_rate) for b in buckets], labels, "error rate")
            + quality)


def _bars(reference: list[float], current: list[float], labels: list[str]) -> str:
    """Reference (grey) beside current (blue) proportions per bin or category."""
    width, height = 240, 60
    n = max(len(reference), 1)
    top = max(reference + current + [1e-9])
    step = width / n
    bars = []
    for i, (ref, cur) in enumerate(zip(reference, current, strict=True)):
        for offset, value, colour in ((0.1, ref, "#9e9e9e"), (0.5, cur, "#1565c0")):
            h = value / top * (height - 5)
            bars.append(f'<rect x="{i * step + offset * step:.1f}" y="{height - h:.1f}" '
                        f'width="{0.4 * step:.1f}" height="{h:.1f}" fill="{colour}">'
                        f'<title>{text(labels[i])}: {value:.3f}</title></rect>')
    return f'<svg width="{width}" height="{height}">{"".join(bars)}</svg>'


def _distribution(result: DriftResult, reference: dict[str, Any], values: Any) -> str:
    import numpy as np
    import pandas as pd

    if reference.get("type") == "categorical":
        frequencies = reference.get("frequencies", {})
        keys = list(frequencies)[:12]
        current = pd.Series(values).dropna().astype(str).value_counts(normalize=True)
        return _bars([frequencies[k] for k in keys], [float(current.get(k, 0)) for k in keys],
                     keys)
    edges = np.asarray(reference.get("bins", []))
    counts = np.asarray(reference.get("counts", []), dtype=float)
    if edges.size < 2 or counts.sum() == 0:
        return ""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    index = np.clip(np.searchsorted(edges, data, side="right") - 1, 0, counts.size - 1)
    current = np.bincount(index, minlength=counts.size) / max(data.size, 1)
    labels = [f"{edges[i]:.3g} to {edges[i + 1]:.3g}" for i in range(counts.size)]
    return _bars(list(counts / counts.sum()), list(current), labels)


def _version_section(context: DashboardContext, name: str, report: MonitorReport,
                     rows: Any) -> str:
    parts = []
    with context.registry() as registry:
        for v in report.versions:
            release = ("not released through an approval" if v.release is None else
                       f'in force since release <a href="models"'
                       f'>#{v.release.request_id}</a> to {text(v.release.alias)}, approved by '
                       f"{text(v.release.decided_by)} on {format_time(v.release.decided_at)}")
            parts.append(f"<h3>{text(name)}:{v.version}</h3><p>{release}</p>")
            parts.append(html_table(
                ["requests", "errors", "error rate", "p50 ms", "p95 ms", "p99 ms", "labelled"],
                [[str(v.rows), str(v.errors), f"{v.error_rate:.2%}",
                  f"{v.latency_ms['p50']:.1f}", f"{v.latency_ms['p95']:.1f}",
                  f"{v.latency_ms['p99']:.1f}", str(v.labelled)]]))
            profile = (registry.store.predictions.profile(name, v.version)
                       if v.version is not None else None)
            if v.drift and profile:
                ok_rows = rows[(rows["version"] == v.version) & (rows["status"] == "ok")]
                table_rows = []
                plots = []
                for d in v.drift:
                    reference = (profile["prediction"] if d.feature == "(prediction)"
                                 else profile["features"][d.feature])
                    column = "output" if d.feature == "(prediction)" else INPUT_PREFIX + d.feature
                    verdict = "DRIFT" if d.drifted else "ok"
                    table_rows.append([d.feature, d.test, "" if d.statistic is None
                                       else f"{d.statistic:.4g}", f"{d.threshold:g}", verdict])
                    if column in ok_rows:
                        plots.append(f'<div class="mlops-dist"><b>{text(d.feature)}</b> '
                                     f'({verdict}) {_distribution(d, reference, ok_rows[column])}'
                                     "</div>")
                parts.append("<h4>Drift (grey: reference, blue: current)</h4>"
                             + html_table(["feature", "test", "statistic", "threshold",
                                           "verdict"], table_rows) + "".join(plots))
            if v.quality:
                parts.append("<h4>Quality</h4>" + html_table(
                    list(v.quality), [[f"{val:.4g}" for val in v.quality.values()]]))
            if v.calibration is not None:
                curve = [b for b in v.calibration.curve if b.count]
                parts.append(f"<h4>Calibration: Brier {v.calibration.brier:.4g}, ECE "
                             f"{v.calibration.ece:.4g}</h4>" + _line_chart(
                                 [(b.mean_predicted or 0.0, b.fraction_positive or 0.0)
                                  for b in curve],
                                 [f"{b.count} predictions" for b in curve],
                                 "reliability: fraction positive by mean predicted"))
    return "".join(parts)


def monitoring_page(context: DashboardContext) -> pn.viewable.Viewable:
    with context.registry() as registry:
        names = registry.store.predictions.monitored_models()
    model = pn.widgets.Select(name="Model", options=names, value=names[0] if names else None)
    window = pn.widgets.Select(name="Window", options=list(WINDOWS), value="everything")
    content = pn.pane.HTML("", sizing_mode="stretch_width")

    def render(_event: object = None) -> None:
        if not model.value:
            content.object = "<p>No predictions logged yet: `mlops serve` or a scoring "\
                             "pipeline logs them.</p>"
            return
        try:
            since = None if WINDOWS[window.value] is None else \
                time.time() - parse_window(WINDOWS[window.value])
            with context.registry() as registry:
                report = build_report(registry.project, registry.store, model.value,
                                      since=since)
                rows = PredictionLog(registry.project).read(registry.store, model.value,
                                                            since=since)
        except MlopsError as exc:
            content.object = message(str(exc), error=True)
            return
        checks = "".join(f'<li class="{"mlops-pass" if c.passed else "mlops-fail"}">'
                         f'{"ok" if c.passed else "ALERT"}: {text(c.name)}: {text(c.detail)}</li>'
                         for c in report.checks)
        content.object = (f"<p>{report.rows} predictions</p>" + _timeline(report)
                          + f"<h4>Checks</h4><ul>{checks}</ul>"
                          + _version_section(context, model.value, report, rows))

    model.param.watch(render, "value")
    window.param.watch(render, "value")
    render()
    return frame(context, "monitoring", pn.Column(pn.Row(model, window), content,
                                                  sizing_mode="stretch_width"))
