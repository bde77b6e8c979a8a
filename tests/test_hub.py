"""The team server as a JupyterHub service, on a real Hub (tests/hub.py): people are who
they logged in to the Hub as, their roles come from Hub groups, and a notebook in a
user's server records with the credentials that server already has, no token pasted."""

from __future__ import annotations

import re

import pytest
import requests

import jupyter_mlops as mlops
from jupyter_mlops.teamserver.home import ServerHome
from jupyter_mlops.teamserver.routes import ROUTES

from .hub import Hub, hub_fixture

RULES = """
[registry]
protected_aliases = ["production"]
"""

NOTEBOOK = """
%cd {project}
%load_ext jupyter_mlops
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
import jupyter_mlops as mlops
X, y = load_iris(return_X_y=True, as_frame=True)
%mlops start --name hub-run
mlops.log_param("C", 0.5)
clf = LogisticRegression(C=0.5, max_iter=300).fit(X, y)
for step in range(1, 51):
    mlops.log_metric("loss", 1 / step, step=step)
%mlops log acc=0.9
print("RUN", mlops.active_run().id)
%mlops model clf --name churn --example X
%mlops end
"""

CLI = """
import subprocess, sys
done = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", {args}],
                      capture_output=True, text=True)
print("EXIT", done.returncode)
print(done.stdout)
print(done.stderr)
"""


@pytest.fixture(scope="module")
def hub(request, tmp_path_factory) -> Hub:
    return hub_fixture(request, tmp_path_factory, RULES)


def team_store(hub: Hub):
    return ServerHome(hub.team_home).open_store()


def cli_in_kernel(hub: Hub, user: str, token: str, project: str, *args: str) -> str:
    code = f"%cd {project}\n" + CLI.format(args=", ".join(repr(a) for a in args))
    return hub.execute(user, token, code)


def test_a_notebook_in_bobs_server_records_and_alice_approves_his_release(hub) -> None:
    home = hub.start_server("bob")
    project = mlops.init(home / "churn")
    (project.home / "config.toml").write_text(f'[store]\nurl = "{hub.service_url}"\n')
    bob = hub.token_for("bob")  # only to reach his server's kernels API, never given to mlops

    out = hub.execute("bob", bob, NOTEBOOK.format(project=project.root))
    run_id = int(re.search(r"RUN (\d+)", out).group(1))
    with team_store(hub) as store:
        run = store.runs.get(run_id)
        assert run.user == "bob" and run.status == "finished" and run.params == {"C": "0.5"}
        assert [p.step for p in store.runs.metric_history(run_id, "loss")] == \
            list(range(1, 51))
        version = store.models.resolve("churn:1")
        assert version.run_id == run_id
    with mlops_store(project) as local:
        assert local.runs.search() == []  # nothing went into the project's own store

    out = cli_in_kernel(hub, "bob", bob, str(project.root), "release", "request", "churn:1",
                        "--to", "production", "--reason", "better")
    assert "EXIT 0" in out, out
    request_id = re.search(r"release request (\d+)", out).group(1)
    out = cli_in_kernel(hub, "bob", bob, str(project.root), "release", "approve", request_id,
                        "--reason", "mine")
    assert "EXIT 1" in out and "user 'bob' (roles: writer)" in out, out
    assert "needs the 'review' permission" in out, out  # bob is no reviewer

    alice = hub.token_for("alice")  # her own Hub token: group ml-reviewers -> reviewer
    answer = hub.service("POST", f"/api/v1/releases/{request_id}/approve", alice,
                         json={"reason": "checked"})
    assert answer.status_code == 200, answer.text
    with team_store(hub) as store:
        assert store.models.resolve("churn@production").run_id == run_id
        actors = {e.actor for e in store.audit.entries(subject="churn:1")}
        assert store.audit.verify().ok
    assert {"bob", "alice"} <= actors


def mlops_store(project):
    from jupyter_mlops.store import Store

    return Store(project.db_path)


def test_a_hub_user_outside_the_allowed_groups_gets_403_on_every_route(hub) -> None:
    carol = hub.token_for("carol")  # in no group: the Hub grants her no access:services
    for route in ROUTES:
        path = route.path.replace("{id}", "1").replace("{digest}", "blake3:" + "0" * 64)
        path = re.sub(r"\{[a-z_]+\}", "x", path)
        answer = hub.service(route.method, path, carol, json={})
        assert answer.status_code == 403, (route.method, path, answer.text)
        assert "access:services!service=mlops" in answer.json()["error"]["message"]


def test_a_hub_token_is_resolved_once_then_taken_from_the_cache(hub) -> None:
    token = hub.token_for("alice")
    asked = hub.log_text().count("GET /hub/api/user (alice@")
    for _ in range(10):
        assert hub.service("GET", "/api/v1/whoami", token).status_code == 200
    assert hub.log_text().count("GET /hub/api/user (alice@") == asked + 1


def test_roles_come_from_hub_groups_and_the_servers_own_tokens_keep_working(hub) -> None:
    alice = hub.service("GET", "/api/v1/whoami", hub.token_for("alice")).json()
    assert alice["user"] == "alice" and set(alice["roles"]) == {"writer", "reviewer"}
    bob = hub.service("GET", "/api/v1/whoami", hub.token_for("bob")).json()
    assert bob["user"] == "bob" and bob["roles"] == ["writer"]
    wrong = hub.service("GET", "/api/v1/whoami", "0" * 32)
    assert wrong.status_code == 401, wrong.text
    with team_store(hub) as store:
        _, secret = store.tokens.create("ci", ["reader"])
    ci = hub.service("GET", "/api/v1/whoami", secret)
    assert ci.status_code == 200 and ci.json()["user"] == "ci", ci.text


def test_bobs_jupyterlab_panel_lists_the_teams_runs_from_the_service(hub) -> None:
    import uuid

    home = hub.start_server("bob")
    if not (home / ".mlops").exists():
        mlops.init(home)  # the panel's project: his server's root folder
    (home / ".mlops" / "config.toml").write_text(f'[store]\nurl = "{hub.service_url}"\n')
    alice = hub.token_for("alice")
    stream = uuid.uuid4().hex
    answer = hub.service("POST", "/api/v1/records", alice, json={"stream": stream, "records": [
        {"seq": 1, "version": 1, "op": "start",
         "run": {"uuid": stream, "name": "alices-run", "started_at": 1.7e9,
                 "source_kind": "notebook"}},
        {"seq": 2, "version": 1, "op": "end", "status": "finished", "error": None}]})
    assert answer.status_code == 200, answer.text
    bob = hub.token_for("bob")
    panel = f"{hub.url}/user/bob/jupyter-mlops/api/runs"
    listed = requests.get(panel, headers={"Authorization": f"token {bob}"}, timeout=60)
    assert listed.status_code == 200, listed.text
    runs = {run["name"]: run for run in listed.json()["runs"]}
    assert runs["alices-run"]["user"] == "alice"  # a teammate's run, read from the service
