"""The Datasets and Pipelines tabs in a team-mode project: a pipeline run for real
(papermill kernels) into a real `mlops server`, then listed by a real Jupyter server
(pytest-jupyter's jp_fetch) with a reader's token: the steps, their reports, the
datasets they wrote, all from the server, no server path in the answer; and the same
tabs clicked in a real JupyterLab (Debian's chromium)."""

from __future__ import annotations

import json

import pytest

from jupyter_mlops.cli.main import main

from .lab import running_lab
from .test_team_pipelines import chain, team  # noqa: F401 (fixtures)

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops.lab": True}}}


@pytest.fixture
def jp_root_dir(project):
    return project.root


async def get(jp_fetch, path: str, **params):
    response = await jp_fetch("jupyter-mlops", "api", path, params=params, method="GET")
    return json.loads(response.body), response.body.decode()


async def test_the_pipelines_and_datasets_tabs_read_the_team_server(
        chain, team, project, jp_fetch, monkeypatch, capsys) -> None:  # noqa: F811
    assert main(["pipeline", "run", str(chain)]) == 0, capsys.readouterr()
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["reader"])
    answer, body = await get(jp_fetch, "pipelines")
    [pipeline] = answer["pipelines"]
    assert (pipeline["name"], pipeline["status"]) == ("chain", "finished")
    steps = {s["step"]: s for s in pipeline["steps"]}
    assert {name: s["status"] for name, s in steps.items()} == {"make": "finished",
                                                                "use": "finished"}
    assert steps["make"]["report"] == "report/make.html"
    assert steps["make"]["run_id"] is not None and steps["make"]["duration"] > 0
    assert str(project.root) not in body and str(team.home) not in body

    datasets, body = await get(jp_fetch, "datasets")
    roles = {(r["run_id"], r["role"]) for d in datasets["datasets"] for r in d["runs"]}
    assert (steps["make"]["run_id"], "output") in roles
    assert str(team.home) not in body

    run_id = steps["make"]["run_id"]
    report = await jp_fetch("jupyter-mlops", "api", "artifacts", str(run_id), "report/make.html",
                            method="GET")
    assert report.headers["Content-Disposition"].startswith("attachment")
    assert b"<html" in report.body.lower()  # the step's report, downloaded from the server


def test_the_tabs_in_jupyterlab_show_the_team_servers_pipelines_and_datasets(
        chain, team, project, monkeypatch, capsys, tmp_path_factory,  # noqa: F811
        browser) -> None:
    # Forced: the team server is shared with the test above, whose run left the steps cached.
    assert main(["pipeline", "run", str(chain), "--force", "all"]) == 0, capsys.readouterr()
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["reader"])  # what the lab server reads with
    with running_lab(project.root, "mlops-team-tabs", tmp_path_factory) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{base}/lab?token=mlops-team-tabs")
        page.locator('[data-id="jupyter-mlops-sidebar"]').click(timeout=60000)
        sidebar = page.locator("#jupyter-mlops-sidebar")
        sidebar.get_by_role("tab", name="Pipelines").click(timeout=60000)
        pipeline = sidebar.locator(".jp-mlops-pipeline").first
        pipeline.wait_for(timeout=30000)
        assert "chain" in pipeline.locator(".jp-mlops-pipeline-head").inner_text()
        assert pipeline.locator(".jp-mlops-steps .jp-mlops-badge").all_inner_texts() == [
            "executed", "executed"]
        pipeline.locator('li[data-step="make"]').get_by_role("button", name="report").click()
        report = page.locator(".jp-MainAreaWidget:visible iframe.jp-mlops-artifact-html")
        report.wait_for(timeout=30000)  # the report's bytes, from the team server
        assert report.get_attribute("sandbox") == ""

        sidebar.get_by_role("tab", name="Datasets").click()
        items = sidebar.locator(".jp-mlops-dataset-list > li")
        items.first.wait_for(timeout=30000)
        assert items.count() >= 1
        assert sidebar.locator(".jp-mlops-error").count() == 0
        assert not dialogs
        page.close()
