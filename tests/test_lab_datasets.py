"""The Datasets tab's route (`datasets`) in a real Jupyter server (pytest-jupyter's
jp_fetch), embedded and in team mode: each dataset version by digest, newest first,
with its size, rows, schema and the runs that read or wrote it."""

from __future__ import annotations

import json

import pytest
import tornado.httpclient

from .team import team_server
from .test_lab_diff import record_training
from .test_lab_team import team_project

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops.lab": True}}}


async def get(jp_fetch, path: str, **params):
    response = await jp_fetch("jupyter-mlops", "api", path, params=params, method="GET")
    return json.loads(response.body)


async def test_datasets_list_versions_with_the_runs_that_used_them(jp_fetch, tracker,
                                                                   project) -> None:
    import jupyter_mlops as mlops

    data = project.root / "train.csv"
    data.write_text("a,b\n1,x\n2,y\n")
    with tracker.start_run("prepare") as prepare:
        mlops.log_dataset(data, role="output")
    with tracker.start_run("train") as train:
        first = mlops.log_dataset(data)
    data.write_text("a,b\n1,x\n2,y\n3,z\n")
    with tracker.start_run("retrain") as retrain:
        second = mlops.log_dataset(data)

    answer = await get(jp_fetch, "datasets")
    assert [d["digest"] for d in answer["datasets"]] == [second.digest, first.digest]
    newest, oldest = answer["datasets"]
    assert (newest["rows"], oldest["rows"]) == (3, 2)
    assert oldest["size"] == len("a,b\n1,x\n2,y\n") and set(oldest["schema"]) == {"a", "b"}
    assert [(r["run_id"], r["role"]) for r in oldest["runs"]] == [
        (prepare.id, "output"), (train.id, "input")]
    assert oldest["runs"][0]["source"].endswith("train.csv")
    assert [r["run_id"] for r in newest["runs"]] == [retrain.id]
    assert answer["has_more"] is False

    page = await get(jp_fetch, "datasets", limit="1", offset="1")
    assert [d["digest"] for d in page["datasets"]] == [first.digest] and not page["has_more"]
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await get(jp_fetch, "datasets", limit="0")
    assert info.value.code == 400
    assert "limit must be between 1" in json.loads(info.value.response.body)["message"]


async def test_in_team_mode_the_datasets_are_the_servers(request, tmp_path_factory, jp_fetch,
                                                         project, monkeypatch) -> None:
    server = team_server(request, tmp_path_factory, "sqlite")
    a = record_training(server, "0.1", b"fit(C)\n", 426)
    b = record_training(server, "0.2", b"fit(C, seed=3)\n", 430)
    team_project(project, server.url)
    monkeypatch.setenv("MLOPS_TOKEN", server.tokens["reader"])
    answer = await get(jp_fetch, "datasets")
    assert [(d["rows"], [r["run_id"] for r in d["runs"]]) for d in answer["datasets"]] == [
        (430, [b]), (426, [a])]
    assert answer["datasets"][0]["runs"][0]["source"] == "data/train.csv"
