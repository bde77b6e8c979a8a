"""Monitoring of one model, summary first: number cards judged against their
thresholds, then time series (latency, error rate, traffic, accuracy) with threshold
lines and markers where the version changed, then the drift table sorted by
severity with the reference and current distributions of the feature picked
(default: the worst), and the reliability curve. Each chart names the model
version and the release that put it in force."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import panel as pn

from ...errors import MlopsError
from ...monitoring.drift import DriftResult
from ...monitoring.predlog import INPUT_PREFIX, PredictionLog, parse_window
from ...monitoring.report import MonitorReport, VersionReport, build_report
from ...views import format_time
from .. import charts
from ..context import DashboardContext
from ..monitoring_summary import by_severity, cards, current_version, version_changes
from .background import off_the_event_loop, problem_shown
from .layout import badge, card, frame, html_pane, message, text, when_loaded

WINDOWS = {"last hour": "1h", "last day": "1d", "last week": "7d", "everything": None}


def _in_force(name: str, version: VersionReport) -> str:
    """`NAME:V (release #N to ALIAS)`: what a chart's title says it shows."""
    ref = f"{name}:{version.version}"
    if version.release is None:
        return f"{ref} (no approved release)"
    return f"{ref} (release #{version.release.request_id} to {version.release.alias})"


def no_drift_reason(name: str, shown: VersionReport) -> str:
    """Why a version's drift table is empty once drift was measured."""
    if shown.version is None:
        return ("drift not measured: these requests were logged without a model version, "
                "and drift compares a version's inputs with that version's reference profile")
    if shown.rows == shown.errors:
        return (f"drift not measured: every request to {name}:{shown.version} in this window "
                "failed, so there are no inputs to compare")
    return (f"drift not measured: {name}:{shown.version} has no reference profile (log the "
            "model with `input_example=` to record one)")


def _versions_note(name: str, report: MonitorReport) -> str:
    lines = []
    for v in report.versions:
        release = ("not released through an approval" if v.release is None else
                   f'in force since release <a href="model?name={text(name)}"'
                   f'>#{v.release.request_id}</a> to {text(v.release.alias)}, approved by '
                   f"{text(v.release.decided_by)} on {format_time(v.release.decided_at)}")
        lines.append(f"<li><b>{text(name)}:{v.version}</b>: {v.rows:,} requests, "
                     f"{v.errors:,} errors; {release}</li>")
    return f"<ul>{''.join(lines)}</ul>"


def _timeline_charts(name: str, report: MonitorReport, settings: Any) -> list[Any]:
    buckets = report.timeline
    if not buckets:
        return []
    by_version = {v.version: v for v in report.versions}
    labels = [_in_force(name, by_version[b.version]) if b.version in by_version
              else f"{name}:{b.version}" for b in buckets]
    changes = [(c.at, f"now {name}:{c.version}") for c in version_changes(report)]
    shown = sorted(set(labels))
    title_tail = "; ".join(shown[:3]) + (" ..." if len(shown) > 3 else "")
    at = [b.start for b in buckets]
    def chart(title: str, values: list, y_label: str, threshold: float | None = None,
              threshold_label: str = "") -> Any:
        return charts.time_series(title, at, values, y_label=y_label, versions=labels,
                                  subtitle=title_tail, threshold=threshold,
                                  threshold_label=threshold_label, changes=changes)

    figures = [
        chart("latency p95", [b.latency_p95_ms for b in buckets], "ms",
              settings.max_latency_p95_ms, f"max {settings.max_latency_p95_ms:g} ms"),
        chart("error rate", [b.error_rate for b in buckets], "share of requests",
              settings.max_error_rate, f"max {settings.max_error_rate:.1%}"),
        chart("requests per interval", [b.rows for b in buckets], "requests")]
    if any(b.accuracy is not None for b in buckets):
        minimum = settings.min_accuracy
        figures.append(chart("accuracy of labelled rows", [b.accuracy for b in buckets],
                             "accuracy", minimum, "" if minimum is None else f"min {minimum:g}"))
    return [pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in figures]


def _drift_table(results: list[DriftResult]) -> str:
    rows = "".join(
        f"<tr><td>{text(d.feature)}</td><td>{text(d.test)}</td>"
        f"<td>{'' if d.statistic is None else f'{d.statistic:.4g}'}</td>"
        f"<td>{d.threshold:g}</td><td>{badge('DRIFT' if d.drifted else 'ok')}</td>"
        f"<td>{d.rows:,}</td><td>{text(d.detail)}</td></tr>" for d in results)
    return ('<div class="mlops-scroll"><table class="mlops-table"><thead><tr><th>feature</th>'
            "<th>test</th><th>statistic</th><th>threshold</th><th>verdict</th><th>rows</th>"
            f"<th>detail</th></tr></thead><tbody>{rows}</tbody></table></div>")


def distribution_figure(title: str, subtitle: str, reference: dict[str, Any],
                        values: Any) -> Any:
    """Reference and current shares of `values` over the reference's bins (or its most
    frequent categories); None when the reference has no bins."""
    import numpy as np
    import pandas as pd

    if reference.get("type") == "categorical":
        frequencies = reference.get("frequencies", {})
        keys = list(frequencies)[:20]
        current = pd.Series(values).dropna().astype(str).value_counts(normalize=True)
        return charts.distributions(title, keys, [frequencies[k] for k in keys],
                                    [float(current.get(k, 0)) for k in keys],
                                    subtitle=subtitle)
    edges = np.asarray(reference.get("bins", []), dtype=float)
    counts = np.asarray(reference.get("counts", []), dtype=float)
    if edges.size < 2 or counts.sum() == 0:
        return None
    # Values that are not numbers (the column's type changed: drift says so) are left out.
    data = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float,
                                                                      na_value=np.nan)
    data = data[~np.isnan(data)]
    edges = edges[:counts.size + 1]
    reference_share = counts / counts.sum()
    # Current values outside the reference's range get bins of their own (the reference
    # has none there): clipped into the end bins, a shift would hide in them.
    if data.size and data.min() < edges[0]:
        edges = np.concatenate([[data.min()], edges])
        reference_share = np.concatenate([[0.0], reference_share])
    if data.size and data.max() > edges[-1]:
        edges = np.concatenate([edges, [data.max()]])
        reference_share = np.concatenate([reference_share, [0.0]])
    bins = reference_share.size
    index = np.clip(np.searchsorted(edges, data, side="right") - 1, 0, bins - 1)
    current = np.bincount(index, minlength=bins) / max(data.size, 1)
    labels = [f"{edges[i]:.3g} to {edges[i + 1]:.3g}" for i in range(bins)]
    return charts.distributions(title, labels, list(reference_share), list(current),
                                edges=list(edges), subtitle=subtitle)


def monitoring_page(context: DashboardContext) -> pn.viewable.Viewable:
    with context.registry() as registry:
        names = registry.store.predictions.monitored_models()
    model = pn.widgets.Select(name="Model", options=names, value=names[0] if names else None)
    window = pn.widgets.Select(name="Window", options=list(WINDOWS), value="everything")
    content = pn.Column(sizing_mode="stretch_width")

    def since_of() -> float | None:
        span = WINDOWS[window.value]
        return None if span is None else time.time() - parse_window(span)

    def render(_event: object = None) -> None:
        if not model.value:
            content.objects = [html_pane("<p>No predictions logged yet: `mlops serve` or a "
                                         "scoring pipeline logs them.</p>")]
            return
        name, since = model.value, since_of()
        try:
            with context.registry() as registry:
                settings = registry.project.monitoring
                first = build_report(registry.project, registry.store, name, since=since,
                                     drift=False)
        except MlopsError as exc:
            content.objects = [html_pane(message(problem_shown(exc, context.root),
                                                 error=True))]
            return
        if first.rows == 0:  # nothing to chart, nothing to measure drift on
            content.objects = [html_pane(message(
                f"no predictions of {name} in the {window.value}: pick a longer window"))]
            return
        # Drift tests read every input column (most of the report's time on a million
        # rows): the cards and the time series are drawn first, then the whole report
        # is built on a thread, and the drift card, checks and section filled in.
        head = html_pane(overview(first, settings))
        later = pn.Column(sizing_mode="stretch_width")
        content.objects = [head, timeline(first, settings), later]

        def measure() -> MonitorReport:
            with context.registry() as registry:
                return build_report(registry.project, registry.store, name, since=since)

        def show(report: MonitorReport | Exception) -> None:
            if not isinstance(report, Exception):
                try:
                    later.objects = drift_section(report)
                    head.object = overview(report, settings)
                    return
                except Exception as exc:  # noqa: BLE001 - said on the page, not lost
                    report = exc
            # The cards and checks no longer wait for drift: it is not coming.
            head.object = overview(replace(first, drift_measured=True), settings)
            problem = problem_shown(report, context.root)
            later.objects = [html_pane(message(f"could not measure drift: {problem}",
                                               error=True))]

        when_loaded(lambda: off_the_event_loop(measure, show))

    def overview(report: MonitorReport, settings: Any) -> str:
        shown = current_version(report)
        heading = ("" if shown is None else
                   f"<p>Cards: {text(_in_force(report.name, shown))}, the version serving "
                   "at the end of the window.</p>")
        cards_html = "".join(card(c.label + (f" ({c.limit})" if c.limit else ""), c.value,
                                  c.passed) for c in cards(report, settings))
        failing = [c for c in report.checks if not c.passed]
        checks = "".join(f"<li>{badge('ALERT')}<span>: {text(c.name)}: {text(c.detail)}"
                         "</span></li>" for c in failing)
        passing = "".join(f"<li>ok: {text(c.name)}: {text(c.detail)}</li>"
                          for c in report.checks if c.passed)
        pending = "" if report.drift_measured else " (drift being measured)"
        checks_html = (f"<details><summary>Checks: {len(failing)} failing, "
                       f"{len(report.checks) - len(failing)} passing{pending}</summary>"
                       f"<ul>{checks}{passing}</ul></details>")
        return (f"<p>{report.rows} predictions</p>{heading}"
                f'<div class="mlops-cards">{cards_html}</div>'
                + _versions_note(report.name, report) + checks_html)

    def timeline(report: MonitorReport, settings: Any) -> Any:
        return pn.GridBox(*_timeline_charts(report.name, report, settings), ncols=2,
                          sizing_mode="stretch_width")

    def drift_section(report: MonitorReport) -> list[Any]:
        shown = current_version(report)
        if shown is None:
            return []
        parts: list[Any] = []
        if not shown.drift:
            parts.append(html_pane(message(no_drift_reason(report.name, shown))))
        else:
            ordered = by_severity(shown.drift)
            picker = pn.widgets.Select(name="Distribution of", options=[d.feature
                                                                        for d in ordered],
                                       value=ordered[0].feature, width=320)
            overlay = pn.Column(sizing_mode="stretch_width")

            def draw(_event: object = None) -> None:
                overlay.objects = [overlay_for(report, shown, picker.value)]

            picker.param.watch(draw, "value")
            draw()
            parts += [html_pane(f"<h3>Drift of {text(_in_force(report.name, shown))}, "
                                "most severe first</h3>" + _drift_table(ordered)),
                      picker, overlay]
        if shown.calibration is not None:
            curve = [b for b in shown.calibration.curve if b.count]
            parts.append(pn.pane.Bokeh(charts.reliability(
                f"reliability: Brier {shown.calibration.brier:.3g}, "
                f"ECE {shown.calibration.ece:.3g}",
                [b.mean_predicted or 0.0 for b in curve],
                [b.fraction_positive or 0.0 for b in curve], [b.count for b in curve],
                subtitle=_in_force(report.name, shown))))
        return parts

    def overlay_for(report: MonitorReport, shown: VersionReport, feature: str) -> Any:
        """The picked feature's reference and current distributions (its column alone is
        read from the log)."""
        column = "output" if feature == "(prediction)" else INPUT_PREFIX + feature
        try:
            with context.registry() as registry:
                profile = registry.store.predictions.profile(report.name, shown.version)
                table = PredictionLog(registry.project).read_table(
                    registry.store, report.name, since=report.since,
                    columns=[column, "version", "status"])
        except MlopsError as exc:
            return html_pane(message(problem_shown(exc, context.root), error=True))
        if not profile or table is None or column not in table.column_names:
            return html_pane(message(f"no reference distribution for {feature}"))
        rows = table.to_pandas()
        if report.since is not None:
            rows = rows[rows["at"] >= report.since]
        rows = rows[(rows["version"] == shown.version) & (rows["status"] == "ok")]
        reference = (profile["prediction"] if feature == "(prediction)"
                     else profile["features"].get(feature, {}))
        figure = distribution_figure(f"{feature}: reference (grey) and current (blue)",
                                     _in_force(report.name, shown), reference, rows[column])
        if figure is None:
            return html_pane(message(f"{feature} was constant in the reference: no bins"))
        return pn.pane.Bokeh(figure, sizing_mode="stretch_width")

    model.param.watch(render, "value")
    window.param.watch(render, "value")
    render()
    return frame(context, "monitoring", pn.Column(pn.Row(model, window), content,
                                                  sizing_mode="stretch_width"))
