"""The Datasets and Pipelines tabs' routes in a team-mode project: a pipeline run for
real (papermill kernels) into a real `mlops server`, then listed by a real Jupyter
server (pytest-jupyter's jp_fetch) with a reader's token: the steps, their reports,
the datasets they wrote, all from the server, no server path in the answer."""

from __future__ import annotations

import json

import pytest

from jupyter_mlops.cli.main import main

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
