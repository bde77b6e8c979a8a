"""The Pipelines tab: its route in a real Jupyter server (pytest-jupyter's jp_fetch) and
the tab in a real JupyterLab (Playwright, Debian's chromium), over a pipeline executed
for real (papermill kernels) twice: executed steps, then cached ones."""

from __future__ import annotations

import json

import pytest

from .lab import running_lab
from .test_pipeline_runs import chain, run_pipeline  # noqa: F401 (a fixture)

pytest_plugins = ("pytest_jupyter.jupyter_server",)

TOKEN = "mlops-pipelines-token"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops.lab": True}}}


@pytest.fixture
def jp_root_dir(project):
    """The server serves the project, as `jupyter lab` started in it would."""
    return project.root


@pytest.fixture
def two_pipeline_runs(project, chain, tracker):  # noqa: F811
    first, _ = run_pipeline(project, chain)
    second, _ = run_pipeline(project, chain)
    assert first.ok and second.ok
    return first.pipeline_run_id, second.pipeline_run_id


async def test_the_pipelines_route_lists_steps_with_their_links(jp_fetch, project,
                                                                two_pipeline_runs) -> None:
    first, second = two_pipeline_runs
    response = await jp_fetch("jupyter-mlops", "api", "pipelines", method="GET")
    pipelines = json.loads(response.body)["pipelines"]
    assert [p["id"] for p in pipelines] == [second, first]
    executed = {s["step"]: s for s in pipelines[1]["steps"]}
    cached = {s["step"]: s for s in pipelines[0]["steps"]}
    assert {s["status"] for s in executed.values()} == {"finished"}
    assert {s["status"] for s in cached.values()} == {"cached"}
    make = executed["make"]
    assert make["report"] == "report/make.html" and make["duration"] > 0
    # executed under .mlops/cache, which JupyterLab will not open: the report is the way in
    assert make["notebook"] is None
    assert str(project.root) not in response.body.decode()


def test_the_pipelines_tab_shows_steps_and_opens_notebook_and_report(
        two_pipeline_runs, project, tmp_path_factory, browser) -> None:
    first, second = two_pipeline_runs
    with running_lab(project.root, TOKEN, tmp_path_factory) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/lab?token={TOKEN}")
        page.locator('[data-id="jupyter-mlops-sidebar"]').click(timeout=60000)
        sidebar = page.locator("#jupyter-mlops-sidebar")
        sidebar.get_by_role("tab", name="Pipelines").click(timeout=60000)
        executed = sidebar.locator(f'.jp-mlops-pipeline[data-pipeline-id="{first}"]')
        cached = sidebar.locator(f'.jp-mlops-pipeline[data-pipeline-id="{second}"]')
        executed.wait_for(timeout=30000)
        assert "chain" in executed.locator(".jp-mlops-pipeline-head").inner_text()
        badges = executed.locator(".jp-mlops-steps .jp-mlops-badge").all_inner_texts()
        assert badges == ["executed", "executed"]
        assert cached.locator(".jp-mlops-steps .jp-mlops-badge").all_inner_texts() == [
            "cached", "cached"]
        wide = sidebar.evaluate("""node => [...node.querySelectorAll('*')]
            .filter(e => e.getBoundingClientRect().right > node.getBoundingClientRect().right + 1)
            .map(e => e.className)""")
        assert sidebar.evaluate("node => node.scrollWidth <= node.clientWidth"), wide  # fits

        make = executed.locator('li[data-step="make"]')
        make.get_by_role("button", name="report").click()
        report = page.locator(".jp-MainAreaWidget:visible iframe.jp-mlops-artifact-html")
        report.wait_for(timeout=30000)
        assert report.get_attribute("sandbox") == ""
        frame = page.frame_locator(".jp-MainAreaWidget:visible iframe.jp-mlops-artifact-html")
        frame.locator("body").get_by_text("numbers", exact=False).first.wait_for(timeout=30000)
        make.get_by_role("button", name="run ").first.click()
        page.locator(".jp-MainAreaWidget .jp-mlops-detail").get_by_text("Parameters").wait_for(
            timeout=30000)
