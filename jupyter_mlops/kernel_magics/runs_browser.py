"""The interactive `%mlops runs` view: a filter box, a run picker and a compare button.

The logic (`apply_filter`, `compare_selected`) works on widget values only, so
tests drive it in a kernel without a browser.
"""

from __future__ import annotations

import html

from ..errors import MlopsError
from ..inspection import compare_runs
from ..store import Store
from ..views import comparison_html, runs_html


class RunsBrowser:
    def __init__(self, store: Store, limit: int, initial_filter: str = "") -> None:
        import ipywidgets as w

        self._store = store
        self._limit = limit
        self.filter_box = w.Text(value=initial_filter, description="filter",
                                 placeholder="metrics.acc > 0.9 and params.C = '0.5'",
                                 continuous_update=False,
                                 layout=w.Layout(width="60%"))
        self.message = w.HTML()
        self.table = w.HTML()
        self.picker = w.SelectMultiple(description="runs", rows=8,
                                       layout=w.Layout(width="60%"))
        self.compare_button = w.Button(description="compare selected", icon="columns")
        self.comparison = w.HTML()
        self.filter_box.observe(lambda change: self.apply_filter(change["new"]), names="value")
        self.compare_button.on_click(lambda _button: self.compare_selected())
        self.widget = w.VBox([self.filter_box, self.message, self.table, self.picker,
                              self.compare_button, self.comparison])
        self.apply_filter(initial_filter)

    def apply_filter(self, expression: str) -> None:
        try:
            runs = self._store.runs.search(expression or None, limit=self._limit)
        except MlopsError as exc:
            self.message.value = f'<pre style="color: #c00">{html.escape(str(exc))}</pre>'
            return
        self.message.value = f"{len(runs)} run(s)"
        self.table.value = runs_html(runs)
        self.picker.options = [(f"{run.id}  {run.name or ''}  {run.status}", run.id)
                               for run in runs]

    def compare_selected(self) -> None:
        chosen = list(self.picker.value)
        if len(chosen) < 2:
            self.comparison.value = "<p>pick two or more runs to compare</p>"
            return
        self.comparison.value = comparison_html(compare_runs(self._store, chosen))
