"""User strings with no space to break at (a release reason of 1,900 characters, a
pipeline step's error of 3,000) wrap inside their card instead of running off the
right edge of the page, where the end of the reason (often the part that matters)
could not be read; a feature named with 300 characters leaves the drift table's
other columns readable (no verdict badge broken into "o / k"). A real dashboard,
Debian's chromium."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris

import jupyter_mlops as mlops
from jupyter_mlops.monitoring.predlog import PredictionLog, prediction_frame
from jupyter_mlops.monitoring.profile import build_profile
from jupyter_mlops.project import find_project
from jupyter_mlops.registry.identity import Identity
from jupyter_mlops.registry.releases import Registry
from jupyter_mlops.store import Store
from jupyter_mlops.store.records import StepFailure

from .helpers import running_dashboard
from .test_dashboard_views import _record_runs

REASON = "W" * 1900
ERROR = "E" * 3000
FEATURE = "F" * 300


@pytest.fixture(scope="module")
def long_strings(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    project = mlops.init(root)
    _record_runs(project)
    project = find_project(root, environ={})
    with Store(project.db_path) as store:
        Registry(project, store).request_release("iris:1", "production",
                                                 Identity("bob", frozenset()), REASON)
        run = store.pipelines.start("nightly", "nightly.yaml", "blake3:" + "0" * 64,
                                    "schedule", ["prep"])
        store.pipelines.update_step(run, "prep", status="failed",
                                    failure=StepFailure(kind="notebook", message=ERROR))
        store.pipelines.finish(run, "failed", error="step prep failed")
        X = load_iris(as_frame=True).data.assign(**{FEATURE: 1.0})
        scores = np.random.default_rng(0).uniform(size=len(X))
        store.predictions.save_profile("iris", 1, build_profile(X, scores))
        PredictionLog(project).write(store, "iris", prediction_frame(X, scores, version=1),
                                     "service")
    with running_dashboard(root, "--dev", ready_path="/releases") as (port, _log):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(("path", "text"), [("/releases", f"requested by bob: {REASON}"),
                                            ("/", ERROR)])
def test_a_string_without_spaces_wraps_inside_the_page(long_strings, browser, path,
                                                       text) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(long_strings + path)
    shown = page.locator("p, li", has_text=text[-40:]).last
    shown.wait_for(timeout=30000)
    box = shown.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1200
    assert shown.evaluate("e => e.scrollWidth <= e.clientWidth")  # nothing cut off inside
    page.close()


def test_a_long_feature_name_leaves_the_drift_tables_other_columns_readable(
        long_strings, browser) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(long_strings + "/monitoring")
    page.get_by_text("most severe first").wait_for(timeout=30000)
    table = page.locator(".mlops-table", has=page.locator("th", has_text="verdict"))
    assert table.get_by_text(FEATURE).count() == 1
    badges = table.locator(".mlops-badge")
    heights = [badges.nth(i).bounding_box()["height"] for i in range(badges.count())]
    assert len(heights) == 6 and max(heights) < 24  # one line each, not "o" over "k"
    for header in ("test", "rows"):  # short words keep their letters together
        cell = table.locator("th", has_text=header).first
        lines = cell.evaluate("e => { const r = document.createRange(); "
                              "r.selectNodeContents(e); return r.getClientRects().length; }")
        assert lines == 1
    page.close()
