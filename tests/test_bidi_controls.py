"""Bidirectional control characters in user strings ("Trojan Source"): a pipeline
named "\u202eevil" would print the rest of its line backwards on the dashboard
("run #1 (date): prep failed" reordered). Every user string the dashboard and the
notebook tables show goes through `views.escape_text`, which escapes it and shows
such characters as their code points."""

from __future__ import annotations

import pytest

from jupyter_mlops.dashboard.pages.layout import text
from jupyter_mlops.store.records import StepFailure
from jupyter_mlops.views import escape_text, html_table

from .helpers import running_dashboard

RLO = "\u202e"


@pytest.mark.parametrize(("value", "shown"), [
    (f"{RLO}evil", "&lt;U+202E&gt;evil"),
    ("a\u2066b\u2069c\u202ad", "a&lt;U+2066&gt;b&lt;U+2069&gt;c&lt;U+202A&gt;d"),
    ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
    ("שלום abc", "שלום abc"),  # right-to-left letters are text, left as they are
])
def test_user_strings_are_escaped_with_bidi_controls_shown(value, shown) -> None:
    assert escape_text(value) == shown == text(value)
    assert f"<td>{shown}</td>" in html_table(["name"], [[value]])


def test_a_pipeline_named_with_an_override_does_not_reorder_the_landing_page(
        project, browser) -> None:
    from jupyter_mlops.store import Store

    with Store(project.db_path) as store:
        run = store.pipelines.start(f"{RLO}nightly", "p.yaml", "blake3:" + "0" * 64,
                                    "schedule", ["prep"])
        store.pipelines.update_step(run, "prep", status="failed", failure=StepFailure(
            kind="notebook", message="cell 3 raised KeyError"))
        store.pipelines.finish(run, "failed", error="step prep failed")
    with running_dashboard(project.root, "--dev", ready_path="/") as (port, _log):
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        line = page.locator("li", has_text="cell 3 raised KeyError")
        line.wait_for(timeout=30000)
        assert "<U+202E>nightly" in line.inner_text()
        assert RLO not in line.inner_text()
        page.close()
