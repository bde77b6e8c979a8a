"""Query arguments are the attacker's part of a link sent to a reviewer. Panel's
template looks `?theme=` up in its themes, fails on any other value, and Panel
showed that failure's message as HTML: `/releases?theme=<img src=x onerror=...>`
ran the link's script in the reviewer's signed-in page (a reflected XSS). An
unknown theme is now dropped, and any page that fails says so in one escaped line.
A real dashboard server, Debian's chromium."""

from __future__ import annotations

import pytest

import jupyter_mlops as mlops
from tests.helpers import running_dashboard

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    root = tmp_path_factory.mktemp("query")
    mlops.init(root)
    with running_dashboard(root, "--dev", ready_path="/releases") as (port, log):
        yield f"http://127.0.0.1:{port}", log


@pytest.mark.parametrize("query", [
    "theme=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
    "theme=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
    "theme=%FF%FE",  # not UTF-8
    "theme=dark&theme=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
])
@pytest.mark.parametrize("path", ["/", "/releases", "/monitoring", "/model"])
def test_a_hostile_theme_runs_nothing_and_the_page_still_shows(dashboard, browser, path,
                                                                query) -> None:
    base, _ = dashboard
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{base}{path}?{query}")
    page.get_by_text("DEVELOPMENT MODE").wait_for(timeout=30000)  # the frame rendered
    page.wait_for_timeout(300)
    assert page.locator("img[src=x]").count() == 0 and dialogs == []
    page.close()


def test_the_dark_theme_still_comes_from_the_link(dashboard, browser) -> None:
    base, _ = dashboard
    page = browser.new_page()
    page.goto(f"{base}/releases?theme=dark")
    page.get_by_text("DEVELOPMENT MODE").wait_for(timeout=30000)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(c) for c in background[background.index("(") + 1:-1].split(",")[:3]]
    assert max(channels) < 80, background
    page.close()


def test_a_page_that_fails_says_so_as_text(monkeypatch, tmp_path) -> None:
    """Whatever a page function raises is shown as one escaped line (the traceback goes
    to the log), never as Panel's HTML of the message."""
    import panel as pn

    from jupyter_mlops.dashboard import app
    from jupyter_mlops.dashboard.context import DashboardContext
    from jupyter_mlops.dashboard.pages import audit

    def broken(_context):
        raise KeyError(HOSTILE)

    monkeypatch.setattr(audit, "audit_page", broken)
    pages, _ = app.build(DashboardContext(root=tmp_path, auth=None, dev=True), tmp_path)
    shown = pages["audit"]()
    assert isinstance(shown, pn.pane.HTML)
    assert "this page failed (KeyError)" in shown.object and "<img" not in shown.object
