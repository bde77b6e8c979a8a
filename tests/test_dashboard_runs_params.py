"""The runs page's params-against-metric view when no param differs across the
filtered runs: a sentence saying so, not a parallel-coordinates chart with one axis
on which every run is an invisible dot. Built outside a server session (Panel
objects only); the chart itself is drawn in tests/test_dashboard_views.py."""

from __future__ import annotations

import panel as pn

import jupyter_mlops as mlops
from jupyter_mlops.dashboard.context import DashboardContext
from jupyter_mlops.dashboard.pages.runs import runs_page


def _said(page) -> str:
    return " ".join(str(pane.object) for part in page.main
                    for pane in part.select(pn.pane.HTML))


def test_runs_with_the_same_params_are_said_to_have_nothing_to_compare(project,
                                                                       tracker) -> None:
    for acc in (0.8, 0.9):
        with tracker.start_run("same"):
            mlops.log_param("C", 1.0)
            mlops.log_metric("acc", acc)
    page = runs_page(DashboardContext(root=project.root, auth=None, dev=True))
    assert "no param differs across the 2 runs that logged acc" in _said(page)
    assert not [b for part in page.main for b in part.select(pn.pane.Bokeh)]


def test_runs_whose_params_differ_get_the_chart(project, tracker) -> None:
    for c, acc in ((0.5, 0.8), (1.0, 0.9)):
        with tracker.start_run("varied"):
            mlops.log_param("C", c)
            mlops.log_metric("acc", acc)
    page = runs_page(DashboardContext(root=project.root, auth=None, dev=True))
    assert "no param differs" not in _said(page)
    assert len([b for part in page.main for b in part.select(pn.pane.Bokeh)]) == 1
