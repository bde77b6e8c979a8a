"""The side panel in a real JupyterLab, driven by Playwright in Debian's chromium."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from .lab import running_lab

TOKEN = "mlops-test-token"



@pytest.fixture
def lab(project, tmp_path_factory):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in (
        "%load_ext jupyter_mlops\n%mlops start --name live",
        "%mlops log acc=0.5",
    )]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, project.root / "live.ipynb")
    with running_lab(project.root, TOKEN, tmp_path_factory) as base:
        yield base, project


def _run_cell(page, source: str) -> None:
    """Type a new cell at the end of the notebook and run it."""
    page.keyboard.press("Escape")
    page.locator(".jp-Notebook .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")  # edit mode in the new cell
    page.keyboard.type(source)
    page.keyboard.press("Shift+Enter")


def test_runs_appear_update_and_compare_in_the_panel(lab, browser) -> None:
    base, project = lab
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{base}/lab/tree/live.ipynb?token={TOKEN}")
    page.locator(".jp-Notebook").wait_for(timeout=60000)
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=60000)
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-OutputArea-output", has_text="started").first.wait_for(timeout=60000)

    page.locator('[data-id="jupyter-mlops-sidebar"]').click()
    sidebar = page.locator("#jupyter-mlops-sidebar")
    live_row = sidebar.locator('tr.jp-mlops-run[data-run-id="1"]')  # a fresh project
    live_row.wait_for(timeout=30000)
    assert "live" in live_row.inner_text() and "running" in live_row.inner_text()
    assert "jp-mlops-live" in live_row.get_attribute("class")  # this notebook's live run
    live_row.get_by_text("0.5").wait_for(timeout=30000)

    _run_cell(page, "%mlops log acc=0.875")
    live_row.get_by_text("0.875").wait_for(timeout=30000)  # the panel follows the run

    _run_cell(page, "%mlops end")
    live_row.get_by_text("finished").wait_for(timeout=30000)
    _run_cell(page, "%mlops start --name second")
    _run_cell(page, "%mlops log acc=0.25\n%mlops end")
    second = sidebar.locator('tr.jp-mlops-run[data-run-id="2"]')
    second.get_by_text("finished").wait_for(timeout=30000)
    assert "second" in second.inner_text()

    live_row.locator("input[type=checkbox]").check()
    second.locator("input[type=checkbox]").check()
    sidebar.get_by_role("button", name="Compare selected (2)").click()
    comparison = page.locator(".jp-MainAreaWidget .jp-mlops-compare-view")
    comparison.get_by_text("Comparing 2 runs").wait_for(timeout=30000)
    assert comparison.locator("tr.jp-mlops-differs", has_text="acc").count() == 1

    live_row.click()
    page.locator(".jp-MainAreaWidget .jp-mlops-detail").get_by_text("Parameters").wait_for(
        timeout=30000)

    shots = os.environ.get("MLOPS_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / "panel-light.png"))
        page.get_by_text("Settings", exact=True).click()
        page.get_by_text("Theme", exact=True).hover()
        page.get_by_text("JupyterLab Dark", exact=True).click()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(Path(shots) / "panel-dark.png"))
