"""Runs: filter with the run filter language; the filtered runs' params against a chosen
metric (parallel coordinates); compare two or more runs by id: every stepped metric
they share as overlaid lines, one chart per metric, then the side-by-side table.

The list refreshes itself while a run in it is running, so a run that ends while
the page is open no longer says `running`.
"""

from __future__ import annotations

from typing import Any

import panel as pn

from ...errors import MlopsError
from ...inspection import compare_runs
from ...store.records import Run
from ...views import comparison_html, runs_html
from .. import charts
from ..context import DashboardContext
from ..runs_compare import params_against, parse_run_ids, stepped_metrics
from .layout import frame, html_pane, message

REFRESH_MS = 3000  # while a listed run is running


def _compare_charts(figures: list[Any]) -> pn.viewable.Viewable:
    return pn.GridBox(*[pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in figures],
                      ncols=2, sizing_mode="stretch_width")


def runs_page(context: DashboardContext) -> pn.viewable.Viewable:
    filter_box = pn.widgets.TextInput(name="Filter", placeholder="metrics.acc > 0.9",
                                      max_length=1000, sizing_mode="stretch_width")
    table = html_pane("")
    metric = pn.widgets.Select(name="Params against metric", options=[], width=260)
    params_view = pn.Column(sizing_mode="stretch_width")
    # Run ids typed, not picked from a searchable list: Enter compares exactly the runs
    # named (a fuzzy list's first match is not always the run typed), and no user
    # string is ever rendered as an option label.
    picker = pn.widgets.TextInput(name="Compare runs (ids, then Enter)",
                                  placeholder="e.g. 10 12 14", max_length=200, width=320)
    comparison = pn.Column(sizing_mode="stretch_width")
    listed: list[Run] = []
    refresher: list[Any] = []  # the periodic callback, while one runs

    def apply(_event: object = None) -> None:
        try:
            with context.registry() as registry:
                runs = registry.store.runs.search(filter_box.value or None, limit=100)
        except MlopsError as exc:
            table.object = message(str(exc), error=True)
            return
        table.object = '<div class="mlops-scroll">' + runs_html(runs) + "</div>"
        listed[:] = runs
        keys = sorted({key for run in runs for key in run.metrics})
        if metric.options != keys:
            metric.options = keys
            metric.value = keys[0] if keys else None
        else:
            draw_params()
        keep_fresh(any(run.status == "running" for run in runs))

    def keep_fresh(running: bool) -> None:
        if running and not refresher and pn.state.curdoc is not None:
            refresher.append(pn.state.add_periodic_callback(refresh, period=REFRESH_MS))
        elif not running and refresher:
            refresher.pop().stop()

    def refresh() -> None:
        apply()
        if comparison.objects and picker.value:
            compare()

    def draw_params(_event: object = None) -> None:
        if not metric.value or len(listed) < 2:
            params_view.objects = []
            return
        view = params_against(listed, metric.value)
        if len(view.rows) < 2:
            params_view.objects = [html_pane(message(
                f"fewer than two of these runs logged {metric.value}"))]
            return
        if len(view.axes) < 2:  # the metric's axis alone: each run a dot, no line
            params_view.objects = [html_pane(message(
                f"no param differs across the {len(view.rows)} runs that logged "
                f"{metric.value}: nothing to set against it"))]
            return
        params_view.objects = [pn.pane.Bokeh(charts.parallel_coordinates(
            f"params of the {len(view.rows)} filtered runs against {metric.value}",
            view.axes, view.rows, view.labels, view.metric, colour_label=metric.value),
            sizing_mode="stretch_width")]

    def compare(_event: object = None) -> None:
        try:
            ids = parse_run_ids(picker.value or "")
            with context.registry() as registry:
                result = compare_runs(registry.store, ids)
                stepped = stepped_metrics(registry.store, result.runs)
        except MlopsError as exc:
            comparison.objects = [html_pane(message(str(exc), error=True))]
            return
        figures = [charts.overlaid_lines(f"{m.key} by step", m.lines, y_label=m.key)
                   for m in stepped]
        note = ("" if stepped else
                "<p>No metric logged at several steps by two of these runs.</p>")
        comparison.objects = [
            html_pane(f"<h3>Compared: runs {', '.join(str(i) for i in ids)}</h3>{note}"),
            _compare_charts(figures),
            html_pane('<div class="mlops-scroll mlops-compare">'
                      + comparison_html(result) + "</div>")]

    filter_box.param.watch(apply, "value")
    metric.param.watch(draw_params, "value")
    picker.param.watch(compare, "value")
    button = pn.widgets.Button(name="Compare", button_type="primary", align="end")
    button.on_click(compare)
    apply()
    body = pn.Column(filter_box, table, metric, params_view, pn.Row(picker, button),
                     comparison, sizing_mode="stretch_width")
    return frame(context, "runs", body)
