"""The panel's routes in a team-mode project: a real Jupyter server (pytest-jupyter's
jp_fetch) reads a real `mlops server` through `RemoteStore`, and the server's refusals
reach the panel as one-line JSON errors, never a traceback."""

from __future__ import annotations

import json
import time

import pytest
import tornado.httpclient

from jupyter_mlops.teamserver.home import ServerHome

from .helpers import free_port
from .team import USERS, record_run, team_server

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops.lab": True}}}


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    server = team_server(request, tmp_path_factory, "sqlite")
    server.first = record_run(server, "colleague-a", params={"C": "0.1"},
                              metrics={"acc": 0.7}, files={"plots/roc.png": b"\x89PNG roc"},
                              model="churn")
    server.second = record_run(server, "colleague-b", params={"C": "0.2"},
                               metrics={"acc": 0.8})
    return server


def team_project(project, url: str) -> None:
    """Make `project` a team-mode project of `url` (its config, as a user would)."""
    config = project.home / "config.toml"
    text = config.read_text()
    assert '# url = "https://mlops.example.org:8765"' in text
    config.write_text(text.replace('# url = "https://mlops.example.org:8765"', f'url = "{url}"'))


@pytest.fixture
def in_team_mode(team, project, monkeypatch):
    team_project(project, team.url)
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["reader"])
    return team


async def get(jp_fetch, path: str, **params):
    response = await jp_fetch("jupyter-mlops", "api", path, params=params, method="GET")
    return json.loads(response.body)


async def refusal(jp_fetch, path: str, **params) -> tuple[int, str]:
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("jupyter-mlops", "api", path, params=params, method="GET")
    body = json.loads(info.value.response.body)
    assert set(body) == {"message"} and "\n" not in body["message"], body
    assert "Traceback" not in body["message"]
    return info.value.code, body["message"]


async def test_runs_detail_compare_models_and_artifacts_come_from_the_server(
        jp_fetch, in_team_mode) -> None:
    team = in_team_mode
    first, second = team.first["run_id"], team.second["run_id"]
    listing = await get(jp_fetch, "runs")
    assert [r["name"] for r in listing["runs"]] == ["colleague-b", "colleague-a"]
    assert {r["user"] for r in listing["runs"]} == {USERS["writer"]}
    found = await get(jp_fetch, "runs", filter="metrics.acc > 0.75")
    assert [r["name"] for r in found["runs"]] == ["colleague-b"]
    detail = await get(jp_fetch, f"runs/{first}")
    assert detail["run"]["name"] == "colleague-a"
    assert "plots/roc.png" in [a["name"] for a in detail["artifacts"]]
    comparison = await get(jp_fetch, "compare", runs=f"{first},{second}")
    assert {"C", "acc"} <= {row["key"] for row in comparison["rows"] if row["differs"]}
    models = await get(jp_fetch, "models")
    assert [(m["name"], [v["version"] for v in m["versions"]]) for m in models["models"]] \
        == [("churn", [1])]
    response = await jp_fetch("jupyter-mlops", "api", "artifacts", str(first), "plots",
                              "roc.png")
    assert response.body == b"\x89PNG roc"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert (await refusal(jp_fetch, f"runs/{10**9}"))[0] == 404
    assert (await refusal(jp_fetch, f"artifacts/{second}/plots/roc.png"))[0] == 404


async def test_a_server_that_does_not_answer_is_a_503_naming_it(jp_fetch, project,
                                                                monkeypatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    team_project(project, url)
    monkeypatch.setenv("MLOPS_TOKEN", "mlops_" + "x" * 43)
    for path, params in (("runs", {}), ("runs/1", {}), ("compare", {"runs": "1,2"}),
                         ("models", {}), ("artifacts/1/a.txt", {})):
        status, message = await refusal(jp_fetch, path, **params)
        assert status == 503, (path, status, message)
        assert url in message and "mlops server start" in message


def expired_token(team) -> str:
    with ServerHome(team.home).open_store() as store:
        return store.tokens.create("old-user", ["reader"], expires_days=1,
                                   now=time.time() - 2 * 86400)[1]


@pytest.mark.parametrize("token", ["wrong", "expired", "revoked", None])
async def test_a_refused_token_is_a_401_saying_what_to_do(jp_fetch, team, project,
                                                         monkeypatch, token) -> None:
    team_project(project, team.url)
    if token == "wrong":
        monkeypatch.setenv("MLOPS_TOKEN", "mlops_" + "w" * 43)
    elif token == "expired":
        monkeypatch.setenv("MLOPS_TOKEN", expired_token(team))
    elif token == "revoked":
        with ServerHome(team.home).open_store() as store:
            made, secret = store.tokens.create("leaver", ["reader"])
            store.tokens.revoke(made.id)
        monkeypatch.setenv("MLOPS_TOKEN", secret)
    else:
        monkeypatch.delenv("MLOPS_TOKEN", raising=False)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(project.root / "no-login-here"))
    status, message = await refusal(jp_fetch, "runs")
    assert status == 401, message
    assert "mlops login" in message or "token" in message


def test_the_panel_lists_the_servers_runs_and_says_when_it_is_down(
        team, project, browser, tmp_path_factory, monkeypatch) -> None:
    """In a real JupyterLab (Debian's chromium): the panel shows the team server's runs,
    and a server that stops answering is one line in the panel, not a traceback."""
    from .lab import running_lab

    team_project(project, team.url)
    token = "mlops-lab-team-test"
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["reader"])
    with running_lab(project.root, token, tmp_path_factory) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/lab?token={token}")
        page.locator('[data-id="jupyter-mlops-sidebar"]').click()
        sidebar = page.locator("#jupyter-mlops-sidebar")
        first = team.first["run_id"]
        row = sidebar.locator(f'tr.jp-mlops-run[data-run-id="{first}"]')
        row.wait_for(timeout=60000)
        assert "colleague-a" in row.inner_text()
        row.click()  # the detail opens in a main-area tab (issue 15)
        page.locator(".jp-MainAreaWidget .jp-mlops-detail").get_by_text(
            "plots/roc.png").first.wait_for(timeout=30000)
        team.stop()
        try:
            sidebar.locator(".jp-mlops-filter").fill("metrics.acc > 0")
            sidebar.locator(".jp-mlops-filter").press("Enter")
            error = sidebar.locator(".jp-mlops-message.jp-mlops-error")
            error.wait_for(timeout=30000)
            assert "did not answer" in error.inner_text() and team.url in error.inner_text()
            assert "Traceback" not in page.content()
        finally:
            team.start()
