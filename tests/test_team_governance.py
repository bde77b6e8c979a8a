"""Governance from a team-mode project: `mlops gates run`, `mlops release` and `mlops models
alias` go through the team server's routes, which act as the token's user under the rules
of the server's registry.toml, on a real server with real models (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from jupyter_mlops.cli.main import main
from jupyter_mlops.project import find_project
from jupyter_mlops.tracking import Tracker

from .team import USERS, team_server

RULES = """
[registry]
protected_aliases = ["production"]
evaluation_data = "eval.parquet"
evaluation_target = "target"

[[gates]]
check = "accuracy >= 0.8"
[[gates]]
check = "brier <= 0.2"

[users.anyone]
roles = ["admin"]    # ignored on the server: a token's roles are the roles
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def team(request, tmp_path_factory):
    server = team_server(request, tmp_path_factory, request.param)
    (server.home / "registry.toml").write_text(RULES)
    data = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(data, test_size=0.3, random_state=0,
                                   stratify=data["target"])
    test.to_parquet(server.home / "eval.parquet")
    server.train = train
    return server


@pytest.fixture
def models(team, project, monkeypatch):
    """cancer:1 (good) and cancer:2 (fails both gates), recorded through the server by the
    writer; then `as_role(role)` sets the token the CLI uses."""
    monkeypatch.setenv("MLOPS_URL", team.url)
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["writer"])
    X, y = team.train.drop(columns="target"), team.train["target"]
    name = f"cancer-{uuid.uuid4().hex[:8]}"  # one model per test on the shared server
    tracker = Tracker(find_project())
    try:
        with tracker.start_run("train") as run:
            good = run.log_model(
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y),
                name, input_example=X.head())
            bad = run.log_model(DummyClassifier(strategy="most_frequent").fit(X, y), name,
                                input_example=X.head())
    finally:
        tracker.close()

    def as_role(role: str) -> None:
        monkeypatch.setenv("MLOPS_TOKEN", team.tokens[role])

    return good.ref, bad.ref, as_role


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mlops: error: "), err
    return lines[0]


def test_gates_run_on_the_servers_evaluation_data(team, models, capsys):
    good, bad, as_role = models
    assert main(["gates", "run", good]) == 0
    assert capsys.readouterr().out.count("PASS") == 2
    assert main(["gates", "run", bad]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["gates", "run", good, "--data", "/etc/passwd"]) == 1
    assert "server's evaluation data" in one_line_error(capsys)
    as_role("reader")
    assert main(["gates", "run", good]) == 1
    assert "permission" in one_line_error(capsys).lower()


def test_a_release_requested_by_one_token_is_approved_by_another(team, models, capsys):
    from jupyter_mlops.teamserver.home import ServerHome

    good, _, as_role = models
    name = good.split(":")[0]
    assert main(["release", "request", good, "--to", "production", "--reason", "better"]) == 0
    out = capsys.readouterr().out
    assert "gates passed" in out and "waiting for a reviewer" in out
    request_id = out.split()[2].rstrip(":")
    assert main(["release", "approve", request_id, "--reason", "mine"]) == 1  # a writer
    one_line_error(capsys)
    as_role("reviewer")
    assert main(["release", "approve", request_id, "--reason", "checked"]) == 0
    assert f"approved by {USERS['reviewer']}" in capsys.readouterr().out
    assert main(["models", "show", f"{name}@production"]) == 0
    assert good in capsys.readouterr().out
    with ServerHome(team.home).open_store() as store:
        actors = [e.actor for e in store.audit.entries(subject=good)]
        assert store.audit.verify().ok
    assert USERS["writer"] in actors and USERS["reviewer"] in actors


def test_nobody_approves_their_own_and_failing_gates_need_an_admins_reason(team, models,
                                                                           capsys):
    _, bad, as_role = models
    as_role("reviewer")
    assert main(["release", "request", bad, "--to", "production", "--reason", "try"]) == 0
    out = capsys.readouterr().out
    assert "GATES FAILED" in out
    request_id = out.split()[2].rstrip(":")
    assert main(["release", "approve", request_id, "--reason", "mine"]) == 1
    assert "four eyes" in one_line_error(capsys)
    as_role("admin")
    assert main(["release", "approve", request_id, "--reason", "ok"]) == 1
    assert "override" in one_line_error(capsys)
    assert main(["release", "approve", request_id, "--reason", "ok",
                 "--override", "the incident needs it now"]) == 0
    assert f"approved by {USERS['admin']}" in capsys.readouterr().out
    assert main(["release", "show", request_id]) == 0
    assert "the incident needs it now" in capsys.readouterr().out


def test_aliases_move_by_token_and_a_protected_one_does_not(team, models, capsys):
    good, _, as_role = models
    assert main(["models", "alias", good, "staging", "--reason", "try it"]) == 0
    assert f"staging -> {good}" in capsys.readouterr().out
    assert main(["models", "alias", good, "production", "--reason", "sneak"]) == 1
    assert "protected" in one_line_error(capsys)
    assert main(["release", "reject", "1", "--reason", "no"]) == 1  # a writer may not review
    one_line_error(capsys)
