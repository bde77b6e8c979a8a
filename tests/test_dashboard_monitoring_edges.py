"""The monitoring page on the logs a new user actually has: a model logged without a
reference profile, a model whose every request failed, requests logged without a
version, a window with no rows, and a prediction file that went missing (before the
page, or between its summary and its drift thread). Each gets a sentence saying
what is missing, never a stuck "measuring...", a silent "0 of 0" or a server path."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import panel as pn
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.dashboard.context import DashboardContext
from jupyter_mlops.dashboard.pages import monitoring
from jupyter_mlops.monitoring.predlog import PredictionLog, prediction_frame
from jupyter_mlops.monitoring.profile import build_profile
from jupyter_mlops.store import Store

from .helpers import running_dashboard

HOSTILE = "<img src=x onerror=alert(1)>"


def _inputs(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), HOSTILE: rng.choice(["x", "y"], n)})


def _log_edges(project) -> None:
    X = _inputs()
    scores = np.random.default_rng(1).uniform(size=len(X))
    log = PredictionLog(project)
    with Store(project.db_path) as store:
        log.write(store, "noprofile", prediction_frame(X, scores, version=1), "service")
        failed = prediction_frame(X.iloc[:5], np.zeros(5), version=1)
        failed["status"], failed["error"] = "error", f"ValueError: {HOSTILE}"
        log.write(store, "allfailed", failed, "service")
        log.write(store, "noversion", prediction_frame(X, scores, version=None), "service")
        store.predictions.save_profile("monthold", 1, build_profile(X, scores))
        log.write(store, "monthold", prediction_frame(X, scores, version=1,
                                                      at=time.time() - 30 * 86_400), "service")
        store.predictions.save_profile("gone", 1, build_profile(X, scores))
        log.write(store, "gone", prediction_frame(X, scores, version=1), "service")


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges")
    project = mlops.init(root)
    _log_edges(project)
    for batch in (project.home / "predictions" / "gone").iterdir():
        batch.unlink()
    with running_dashboard(root, "--dev", ready_path="/monitoring") as (port, _log):
        yield f"http://127.0.0.1:{port}", root


def _page_text(page) -> str:
    """Every text of the page, into Panel's shadow roots, style sheets left out."""
    return page.evaluate("""() => { const out = [];
        const walk = n => { if (n.shadowRoot) walk(n.shadowRoot);
          for (const c of n.children || []) walk(c);
          if (n.nodeType === 1 && !['STYLE', 'SCRIPT', 'OPTION'].includes(n.tagName)
              && n.children.length === 0 && n.textContent.trim()) out.push(n.textContent.trim()); };
        walk(document.body); return out.join(' | '); }""")


@pytest.mark.parametrize(("model", "window", "said", "card"), [
    ("noprofile", "everything", "drift not measured: noprofile:1 has no reference profile",
     "not measured"),
    ("allfailed", "everything", "every request to allfailed:1 in this window failed",
     "not measured"),
    ("noversion", "everything", "logged without a model version", "not measured"),
    ("monthold", "last hour", "no predictions of monthold in the last hour: pick a longer "
     "window", None),
    ("gone", "everything", "which is missing from .mlops; restore it", None),
])
def test_the_monitoring_page_says_what_is_missing(edges, browser, model, window, said,
                                                  card) -> None:
    base, root = edges
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{base}/monitoring")
    page.get_by_role("combobox").nth(0).select_option(model)
    page.get_by_role("combobox").nth(1).select_option(window)
    page.get_by_text(said).wait_for(timeout=30000)
    shown = _page_text(page)
    assert "measuring..." not in shown and "being measured" not in shown
    assert "0 of 0" not in shown
    assert str(root) not in shown and "Traceback" not in shown
    if card is not None:
        drifting = page.locator(".mlops-card", has_text="features drifting")
        assert drifting.locator(".mlops-value").inner_text() == card
        assert drifting.get_attribute("data-verdict") == "info"  # neither green nor red
    assert page.locator("img[src=x]").count() == 0 and dialogs == []
    page.close()


def test_a_prediction_file_deleted_while_drift_is_measured_is_said_without_its_path(
        project, monkeypatch) -> None:
    """The summary is built, then the file goes (a compaction, a cleanup), then the drift
    thread reads the log. Outside a server session the thread's work runs at once, so
    the deletion is put between the two reports by wrapping the page's `build_report`."""
    X = _inputs()
    scores = np.random.default_rng(1).uniform(size=len(X))
    with Store(project.db_path) as store:
        store.predictions.save_profile("churn", 1, build_profile(X, scores))
        PredictionLog(project).write(store, "churn", prediction_frame(X, scores, version=1),
                                     "service")
    real = monitoring.build_report

    def then_delete(*args, **options):
        report = real(*args, **options)
        if options.get("drift") is False:
            for batch in (project.home / "predictions" / "churn").iterdir():
                batch.unlink()
        return report

    monkeypatch.setattr(monitoring, "build_report", then_delete)
    page = monitoring.monitoring_page(DashboardContext(root=project.root, auth=None, dev=True))
    said = " ".join(str(pane.object) for part in page.main
                    for pane in part.select(pn.pane.HTML))
    assert "could not measure drift: the prediction log of &#x27;churn&#x27; lists " \
           "predictions/churn/" in said
    assert "missing from .mlops; restore it" in said
    assert str(project.root) not in said
    assert "200 predictions" in said  # the summary drawn before stays


def test_the_landing_page_checks_monitoring_after_its_first_paint(project) -> None:
    """The releases and pipeline failures come from the store at once; the monitoring
    checks (a report per model: a second on a million rows) are measured apart, and a
    log that can't be read is said without its server path."""
    from jupyter_mlops.dashboard.pages.home import failing_checks, gather_needs, home_page
    from jupyter_mlops.registry.releases import Registry

    X = _inputs()
    with Store(project.db_path) as store:
        PredictionLog(project).write(store, "churn", prediction_frame(
            X, np.zeros(len(X)), version=1), "service")
    for batch in (project.home / "predictions" / "churn").iterdir():
        batch.unlink()
    with Store(project.db_path) as store:
        registry = Registry(project, store)
        first = gather_needs(registry, None, time.time(), monitoring=False)
        assert first.failing == [] and first.unreadable == []  # no log was read
        failing, unreadable, monitored = failing_checks(registry, time.time())
    assert monitored == 1
    [(name, why)] = unreadable
    assert name == "churn" and "missing from .mlops" in why and str(project.root) not in why
    page = home_page(DashboardContext(root=project.root, auth=None, dev=True))
    said = " ".join(str(pane.object) for part in page.main
                    for pane in part.select(pn.pane.HTML))
    assert "Monitoring checks failing, last day (0)" in said and "missing from .mlops" in said


def _typed_log(project) -> None:
    """Model m: `a` numeric in the reference, mostly text in the log."""
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=200)})
    live = pd.DataFrame({"a": rng.choice(["oops", "1.5"], 200)})
    with Store(project.db_path) as store:
        store.predictions.save_profile("m", 1, build_profile(reference, rng.uniform(size=200)))
        PredictionLog(project).write(store, "m", prediction_frame(
            live, rng.uniform(size=200), version=1), "service")


def _said(page) -> str:
    return " ".join(str(pane.object) for part in page.main
                    for pane in part.select(pn.pane.HTML))


def test_a_feature_whose_type_changed_is_drawn_and_flagged(project) -> None:
    _typed_log(project)
    page = monitoring.monitoring_page(DashboardContext(root=project.root, auth=None, dev=True))
    said = _said(page)
    assert "values are not numbers (e.g. &#x27;oops&#x27;)" in said
    assert "measuring..." not in said and "being measured" not in said
    picker = [w for part in page.main for w in part.select(pn.widgets.Select)
              if w.name == "Distribution of"][0]
    picker.value = "a"  # its overlay: the values that are numbers, against the reference
    titles = [b.object.above[-1].text for part in page.main
              for b in part.select(pn.pane.Bokeh)]
    assert "a: reference (grey) and current (blue)" in titles


def test_a_failure_while_drawing_drift_leaves_no_card_measuring(project, monkeypatch) -> None:
    _typed_log(project)

    def broken(_results):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(monitoring, "by_severity", broken)
    page = monitoring.monitoring_page(DashboardContext(root=project.root, auth=None, dev=True))
    said = _said(page)
    assert "could not measure drift: RuntimeError: drawing failed" in said
    assert "measuring..." not in said and "being measured" not in said


def test_the_landing_page_says_when_no_model_is_monitored(project) -> None:
    from jupyter_mlops.dashboard.pages.home import home_page

    page = home_page(DashboardContext(root=project.root, auth=None, dev=True))
    said = _said(page)
    assert "no model is monitored yet" in said and "every monitoring check passes" not in said
