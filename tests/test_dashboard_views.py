"""The dashboard's views with real data, in a real Panel server driven by Playwright in
Debian's chromium: the template and landing page, one model's page, the monitoring
summary and charts, the releases page, and the runs compare charts.

One project for the module: three runs with stepped metrics (one named with hostile
HTML), two model versions of `iris` (1 in production through an approval, 2
requested by bob with a failing gate), a real prediction log with one drifted
feature, and a failed pipeline run.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import jupyter_mlops as mlops
from jupyter_mlops.dashboard.credentials import add_user
from jupyter_mlops.monitoring.predlog import PredictionLog, prediction_frame
from jupyter_mlops.monitoring.profile import build_profile
from jupyter_mlops.project import find_project
from jupyter_mlops.registry.identity import Identity
from jupyter_mlops.registry.releases import Registry
from jupyter_mlops.store import Store
from jupyter_mlops.store.records import StepFailure
from jupyter_mlops.tracking import Tracker

from .helpers import running_dashboard

HOSTILE = "<img src=x onerror=alert(1)>"
DOCS = None  # screenshots go to docs/ only when the test is asked to (see _screenshot)


def _record_runs(project) -> None:
    tracker = Tracker(project)
    old = mlops.use_tracker(tracker)
    try:
        X, y = load_iris(return_X_y=True, as_frame=True)
        for index, (name, c) in enumerate([(HOSTILE, 1.0), ("small-C", 0.1), ("big-C", 10.0)]):
            with mlops.start_run(name=name):
                mlops.log_params({"C": c, "max_iter": 300 + 100 * index, HOSTILE: "x"})
                for step in range(30):
                    mlops.log_metrics({"loss": 1.0 / (1 + step * c) + 0.01 * index,
                                       "acc": 0.6 + 0.01 * step * (index + 1) / 3}, step=step)
                if index < 2:  # is it virginica: a binary classifier
                    model = LogisticRegression(max_iter=300, C=c).fit(X, (y == 2).astype(int))
                    mlops.log_model(model, name="iris")
    finally:
        tracker.close()
        mlops.use_tracker(old)


def _log_predictions(project, store) -> None:
    X, _ = load_iris(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(0)
    X[HOSTILE] = rng.choice(["a", "b"], len(X))  # a feature named with hostile HTML
    for version in (1, 2):
        store.predictions.save_profile("iris", version,
                                       build_profile(X, rng.uniform(0, 1, len(X))))
    live = X.sample(600, replace=True, random_state=1).reset_index(drop=True)
    live.loc[300:, "petal length (cm)"] += 3  # the second half drifts
    scores = rng.uniform(0, 1, 600)
    frame = prediction_frame(live, scores, version=1, latency_ms=rng.uniform(1, 9, 600),
                             request_ids=[f"r{i}" for i in range(600)])
    frame["at"] = time.time() - 3600 + np.arange(600) * 5.0
    frame.loc[500:, "version"] = 2  # the last 100 requests went to version 2
    log = PredictionLog(project)
    log.write(store, "iris", frame, "service")
    labelled = np.arange(0, 600, 2)  # half the requests get a label later (calibrated)
    log.write_labels(store, "iris", pd.DataFrame({
        "request_id": [f"r{i}" for i in labelled],
        "label": (rng.uniform(0, 1, labelled.size) < scores[labelled]).astype(int)}))


def _fail_a_pipeline(store) -> None:
    run = store.pipelines.start("nightly", "pipelines/nightly.yaml", "blake3:" + "0" * 64,
                                "schedule", ["prep", "train"])
    store.pipelines.update_step(run, "prep", status="failed", failure=StepFailure(
        kind="notebook", message=f"cell 3 raised KeyError: {HOSTILE}"))
    store.pipelines.finish(run, "failed", error="step prep failed")


def _request_releases(root) -> None:
    """Through the registry, as `mlops release request` does: iris:1 with no gates (then
    approved by alice), iris:2 judged by a gate it fails, on real evaluation data."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    (root / "data").mkdir()
    X.assign(target=(y == 2).astype(int)).to_parquet(root / "data" / "eval.parquet")
    bob, alice = Identity("bob", frozenset()), Identity("alice", frozenset({"reviewer"}))
    project = find_project(root, environ={})
    with Store(project.db_path) as store:
        first = Registry(project, store).request_release("iris:1", "production", bob, "first")
        Registry(project, store).approve(first.id, alice, "looks right")
    config = project.home / "config.toml"
    text = config.read_text().replace("[registry]\n", '[registry]\nevaluation_data = '
                                      '"data/eval.parquet"\nevaluation_target = "target"\n', 1)
    config.write_text(text + '\n[[gates]]\ncheck = "accuracy >= production.accuracy + 0.5"\n')
    project = find_project(root, environ={})
    with Store(project.db_path) as store:
        Registry(project, store).request_release("iris:2", "production", bob,
                                                 f"better? {HOSTILE}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    project = mlops.init(root)
    _record_runs(project)
    config = project.home / "config.toml"
    roles = {"alice": ["reviewer"], "carol": ["admin", "reviewer"]}
    config.write_text(config.read_text() + "".join(
        f"\n[users.{user}]\nroles = {json.dumps(granted)}\n" for user, granted in roles.items()))
    _request_releases(root)
    with Store(project.db_path) as store:
        _log_predictions(project, store)
        _fail_a_pipeline(store)
    creds = tmp_path_factory.mktemp("creds") / "credentials.json"
    for user in ("alice", "bob", "carol"):
        add_user(creds, user, f"{user}-password")
    with running_dashboard(root, "--auth", str(creds)) as (port, _log):
        yield f"http://127.0.0.1:{port}", project


def sign_in(browser, base: str, user: str, start: str = "/", **context):
    page = browser.new_context(viewport={"width": 1400, "height": 900}, **context).new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(base + start)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"{user}-password")
    page.click("#login")
    page.get_by_text(f"{user} (").first.wait_for()
    return page, dialogs


def no_injected_html(page, dialogs) -> None:
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []


def test_the_landing_page_says_what_needs_me(served, browser) -> None:
    base, _ = served
    page, dialogs = sign_in(browser, base, "alice")
    page.get_by_text("Releases to review (1)").wait_for()
    assert page.get_by_text("#2: iris:2").count() == 1
    assert page.get_by_text("Recent pipeline failures (1)").count() == 1
    assert page.get_by_text(f"prep: cell 3 raised KeyError: {HOSTILE}").count() == 1
    page.get_by_text("iris:1 drift petal length (cm)").first.wait_for()  # a failing check
    assert page.locator(".mlops-badge-fail").count() >= 2  # FAILED gates, the ALERT
    # Navigation in the sidebar, who is signed in (and as what) in the header.
    assert page.get_by_text("alice (reviewer)").count() == 1
    page.get_by_role("link", name="Models").click()
    page.wait_for_url("**/models")
    no_injected_html(page, dialogs)


def test_the_requester_has_nothing_to_review(served, browser) -> None:
    base, _ = served
    page, _ = sign_in(browser, base, "bob")
    page.get_by_text("Releases to review (0)").wait_for()
    assert page.get_by_text("1 more pending, not yours to decide").count() == 1


def test_one_models_page_shows_its_versions_and_history(served, browser) -> None:
    base, _ = served
    page, dialogs = sign_in(browser, base, "alice", start="/models")
    page.get_by_role("link", name="iris").click()
    page.wait_for_url("**/model?name=iris")
    page.get_by_text("Model iris").wait_for()
    assert page.get_by_text("iris:2").count() >= 1
    assert page.locator(".mlops-badge", has_text="production").count() == 1  # on version 1
    assert page.get_by_text(f"#1 {HOSTILE}").count() == 1  # the run, as text
    assert page.get_by_text("alias moved").count() >= 1  # from the audit log
    page.goto(base + "/model?name=nope")
    page.get_by_text("no model named 'nope'").wait_for()
    no_injected_html(page, dialogs)


def test_the_dark_theme_is_one_click_away(served, browser) -> None:
    base, _ = served
    page, _ = sign_in(browser, base, "alice", start="/models")
    page.goto(base + "/models?theme=dark")
    page.get_by_role("link", name="iris").wait_for()
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(c) for c in background[background.index("(") + 1:-1].split(",")[:3]]
    assert max(channels) < 80, background


def chart_titles(page) -> list[str]:
    """The titles of the Bokeh charts on the page (drawn on a canvas, so read from
    Bokeh's document in the browser), once at least one is there."""
    page.wait_for_function("Bokeh.documents.length > 0 && [...Bokeh.documents[0].all_models]"
                           ".some(m => m.type == 'Title' && m.text)")
    return page.evaluate("[...Bokeh.documents].flatMap(d => [...d.all_models])"
                         ".filter(m => m.type == 'Title').map(m => m.text)")


def chart_labels(page) -> list[str]:
    return page.evaluate("[...Bokeh.documents].flatMap(d => [...d.all_models])"
                         ".filter(m => m.type == 'Label').map(m => m.text)")


def test_the_monitoring_page_puts_the_summary_first(served, browser) -> None:
    base, _ = served
    page, dialogs = sign_in(browser, base, "alice", start="/monitoring")
    page.get_by_text("600 predictions").wait_for()
    # Drift is measured once the cards and the time series are on screen; its card, the
    # checks and the drift table of the version serving now (most severe first) follow.
    page.get_by_text("most severe first").wait_for()
    cards = {page.locator(".mlops-card").nth(i).inner_text().split("\n")[0]:
             page.locator(".mlops-card").nth(i).get_attribute("data-verdict")
             for i in range(page.locator(".mlops-card").count())}
    assert cards == {"requests": "info", "error rate (max 5.00%)": "pass",
                     "latency p95 (max 250 ms)": "pass", "features drifting (max 0)": "fail",
                     "accuracy": "info"}  # no min_accuracy configured: no verdict
    assert page.get_by_text("drift being measured").count() == 0
    drift = page.locator(".mlops-table", has=page.locator("th", has_text="statistic"))
    first = drift.locator("tbody tr").first
    assert first.locator("td").first.inner_text() == "petal length (cm)"
    assert first.locator(".mlops-badge-fail").inner_text() == "DRIFT"
    titles = chart_titles(page)
    for expected in ("latency p95", "error rate", "requests per interval",
                     "accuracy of labelled rows",
                     "petal length (cm): reference (grey) and current (blue)",
                     # what each chart is of, the line under its title:
                     "iris:1 (release #1 to production); iris:2 (no approved release)",
                     "iris:2 (no approved release)"):
        assert expected in titles
    assert any(t.startswith("reliability: Brier") for t in titles)
    assert "now iris:2" in chart_labels(page)  # the marker where the version changed
    assert "max 5.0%" in chart_labels(page)  # the error rate's threshold line
    assert page.get_by_text("in force since release").count() == 1  # iris:1's
    assert drift.get_by_text(HOSTILE).count() == 1  # the hostile feature, as text
    page.get_by_role("combobox").nth(2).select_option(HOSTILE)  # its bars: canvas text
    page.wait_for_function("[...Bokeh.documents[0].all_models].some(m => m.type == 'Title' "
                           "&& m.text.startsWith('<img src=x onerror=alert(1)>: reference'))")
    no_injected_html(page, dialogs)


def test_picking_a_feature_draws_its_distributions(served, browser) -> None:
    base, _ = served
    page, _ = sign_in(browser, base, "alice", start="/monitoring")
    page.get_by_text("600 predictions").wait_for()
    chart_titles(page)
    page.get_by_role("combobox").nth(2).select_option("sepal width (cm)")
    page.wait_for_function("[...Bokeh.documents[0].all_models].some(m => m.type == 'Title' "
                           "&& m.text.startsWith('sepal width (cm): reference'))")


def chart_legends(page) -> list[str]:
    return page.evaluate("[...Bokeh.documents].flatMap(d => [...d.all_models])"
                         ".filter(m => m.type == 'LegendItem').map(m => m.label.value)")


def test_runs_compare_overlays_stepped_metrics_and_fits_the_page(served, browser) -> None:
    base, _ = served
    page, dialogs = sign_in(browser, base, "alice", start="/runs")
    page.get_by_text("small-C").first.wait_for()
    assert "params of the 3 filtered runs against acc" in chart_titles(page)
    picker = page.get_by_placeholder("e.g. 10 12 14")
    picker.fill("3 1 2")
    picker.press("Enter")  # exactly the runs typed, in that order
    page.get_by_text("Compared: runs 3, 1, 2").wait_for()
    page.wait_for_function("[...Bokeh.documents[0].all_models].some(m => m.type == 'Title' "
                           "&& m.text == 'loss by step')")
    titles = chart_titles(page)
    assert "acc by step" in titles and "loss by step" in titles
    legends = chart_legends(page)
    assert {"#3 big-C", f"#1 {HOSTILE}", "#2 small-C"} <= set(legends)
    header = page.locator(".mlops-compare thead th")
    assert [header.nth(i).inner_text() for i in range(2, 5)] == ["run 3", "run 1", "run 2"]
    page.wait_for_timeout(500)  # let the charts take their size
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    assert page.evaluate("Math.max(...[...document.querySelectorAll('*')].map(e => "
                         "e.scrollWidth > e.clientWidth && getComputedStyle(e).overflowX "
                         "== 'visible' ? e.scrollWidth : 0))") <= 1400
    no_injected_html(page, dialogs)


def test_a_running_run_is_shown_ended_once_it_ends(served, browser) -> None:
    base, project = served
    tracker = Tracker(project)
    try:
        run = tracker.start_run("live-run")
        page, _ = sign_in(browser, base, "alice", start="/runs")
        row = page.locator("tr", has_text="live-run")
        row.get_by_text("running").wait_for()
        run.log_metric("acc", 0.5)
        run.end()
        row.get_by_text("finished").wait_for()  # no reload: the list refreshed itself
    finally:
        tracker.close()


def test_a_reviewer_is_told_why_failing_gates_leave_no_approve_button(served, browser) -> None:
    base, _ = served
    page, dialogs = sign_in(browser, base, "alice", start="/releases")
    page.get_by_text("#2: iris:2").wait_for()
    assert page.get_by_role("button", name="Approve").count() == 0
    assert page.get_by_role("button", name="Reject").count() == 1
    page.get_by_text("only an admin can approve this release").wait_for()
    assert "--override" not in page.content()
    assert page.locator(".mlops-badge-fail", has_text="FAIL").count() >= 2  # gate + verdict
    # The lineage graph, data -> run -> version -> alias, and the metrics chart.
    assert page.locator(".mlops-node", has_text="#2 small-C").count() == 1
    assert page.locator(".mlops-node", has_text="production (requested); holds: none yet"
                        ).count() == 1
    chart = page.locator(".mlops-metrics-chart[aria-label='metrics: candidate beside "
                         "current production']")
    assert chart.get_by_text("current production").count() >= 1  # both sides drawn
    assert page.get_by_text(f"better? {HOSTILE}").count() == 1
    no_injected_html(page, dialogs)


def test_an_admin_overrides_failing_gates_with_a_reason(served, browser) -> None:
    """Last in the file: it moves production to iris:2."""
    base, project = served
    page, dialogs = sign_in(browser, base, "carol", start="/releases")
    page.get_by_text("#2: iris:2").wait_for()
    page.get_by_placeholder("why approve or reject").fill("checked by hand")
    page.get_by_placeholder("why approve or reject").press("Tab")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("gates failed: write why you override them").wait_for()
    assert "--override" not in page.content()
    override = page.get_by_label("Override failing gates because (admins)")
    override.fill("the gate's data set is known to be mislabelled")
    override.press("Tab")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("production now points at iris:2").wait_for()
    with Store(project.db_path) as store:
        assert store.releases.alias_version("iris", "production") == 2
        assert store.releases.get(2).override_reason.startswith("the gate's data set")
    no_injected_html(page, dialogs)
