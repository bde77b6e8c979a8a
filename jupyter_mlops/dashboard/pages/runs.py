"""Runs: filter with the run filter language, pick two or more, compare."""

from __future__ import annotations

import panel as pn

from ...errors import MlopsError
from ...inspection import compare_runs
from ...views import comparison_html, runs_html
from ..context import DashboardContext
from .layout import frame, html_pane, message


def runs_page(context: DashboardContext) -> pn.viewable.Viewable:
    filter_box = pn.widgets.TextInput(name="Filter", placeholder="metrics.acc > 0.9",
                                      max_length=1000, sizing_mode="stretch_width")
    table = html_pane("")
    picker = pn.widgets.MultiChoice(name="Compare runs", options={}, max_items=6)
    comparison = html_pane("")

    def apply(_event: object = None) -> None:
        try:
            with context.registry() as registry:
                runs = registry.store.runs.search(filter_box.value or None, limit=100)
        except MlopsError as exc:
            table.object = message(str(exc), error=True)
            return
        table.object = runs_html(runs)
        # Bokeh's MultiChoice (Choices.js) renders labels as HTML: never put user
        # strings (run names) in them; the table above shows the names as text.
        picker.options = {f"run {r.id}": r.id for r in runs}

    def compare(_event: object = None) -> None:
        chosen = list(picker.value)
        if len(chosen) < 2:
            comparison.object = message("pick two or more runs")
            return
        with context.registry() as registry:
            comparison.object = comparison_html(compare_runs(registry.store, chosen))

    filter_box.param.watch(apply, "value")
    button = pn.widgets.Button(name="Compare", button_type="primary")
    button.on_click(compare)
    apply()
    body = pn.Column(filter_box, table, pn.Row(picker, button), comparison,
                     sizing_mode="stretch_width")
    return frame(context, "runs", body)
