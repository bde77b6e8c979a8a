"""`mlops serve` in a team-mode project, against a real `mlops server`: it follows the
alias through the server, serves the model it downloads (checked against its digest),
and ships its prediction log there; the server stopped mid-serve and started again
loses and doubles no row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from jupyter_mlops.monitoring.predlog import PredictionLog
from jupyter_mlops.project import find_project
from jupyter_mlops.store import Store, codec
from jupyter_mlops.tracking import Tracker

from .helpers import free_port, wait_for, wait_until_serving
from .team import team_server

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
FEATURES = list(X.columns[:4])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, request.param)


@pytest.fixture
def in_team_mode(team, project, tmp_path, monkeypatch):
    """`project` records into `team`; a writer trains `cancer` v1 (C=1) and v2 (C=0.01),
    a reviewer approves v1 into production."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MLOPS_URL", team.url)
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["writer"])
    tracker = Tracker(find_project())
    try:
        with tracker.start_run("train") as run:
            versions = [run.log_model(LogisticRegression(C=c, max_iter=5000).fit(X[FEATURES], Y),
                                      name="cancer", input_example=X[FEATURES])
                        for c in (1.0, 0.01)]
    finally:
        tracker.close()
    for version in versions:
        assert version.version is not None
    team.versions = versions
    release(team, versions[0].ref)
    return team


def release(team, ref: str) -> None:
    """A writer requests `ref` into production, a reviewer approves (four eyes)."""
    asked = team.post("/api/v1/releases", "writer",
                      json={"model": ref, "alias": "production", "reason": "better"})
    assert asked.status_code == 200, asked.text
    number = codec.decode(asked.json()["request"]).id
    approved = team.post(f"/api/v1/releases/{number}/approve", "reviewer",
                         json={"reason": "looked at the evidence"})
    assert approved.status_code == 200, approved.text


def start_serve(project, team, role: str = "runner") -> tuple[str, subprocess.Popen]:
    port = free_port()
    env = {**os.environ, "MLOPS_HOME": str(project.root), "MLOPS_URL": team.url,
           "MLOPS_TOKEN": team.tokens[role]}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "serve",
                             "cancer@production", "--port", str(port), "--poll", "0.2"],
                            cwd=project.root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base + "/health", proc)
    return base, proc


def predict(base: str, rows: int = 3) -> dict:
    body = {"instances": X[FEATURES].head(rows).to_dict(orient="records")}
    request = urllib.request.Request(base + "/predict", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def server_log(team):
    """The rows of the server's prediction log of `cancer` (none logged: empty)."""
    import pandas as pd

    with Store(team.db_url, audit_key_path=team.home / "audit.key") as store:
        if not store.predictions.batches("cancer"):
            return pd.DataFrame()
        return PredictionLog(type("Home", (), {"home": team.home})()).read(store, "cancer")


def spooled_rows(pending) -> int:
    """Prediction-log rows in the `predictions` records waiting in the spool."""
    if not pending.exists():
        return 0
    return sum(record["rows"] for line in pending.read_text().splitlines() if line.strip()
               for record in json.loads(line)["records"] if record["op"] == "predictions")


def health(base: str) -> dict:
    with urllib.request.urlopen(base + "/health", timeout=30) as response:
        return json.loads(response.read())


def logged_ids(team) -> list[str]:
    frame = server_log(team)
    return [] if frame.empty else list(frame["request_id"])


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out, err


def test_serve_follows_the_alias_through_the_server_and_ships_every_row_once(
        in_team_mode, project):
    team = in_team_mode
    before = set(logged_ids(team))
    base, proc = start_serve(project, team)
    try:
        answered = []
        first = predict(base)
        assert first["model"] == team.versions[0].ref  # production, downloaded and verified
        answered += first["request_ids"]
        for _ in range(5):
            answered += predict(base)["request_ids"]
        assert wait_for(lambda: set(answered) <= set(logged_ids(team)), timeout=60)
        before_outage = list(answered)

        # the server goes away: the service answers on, its log waits in the spool, one
        # batch a second
        team.stop()
        spooled = project.home / "spool" / f"uid-{os.geteuid()}" / "pending.jsonl"
        for _ in range(3):
            reply = predict(base)
            assert reply["model"] == team.versions[0].ref
            answered += reply["request_ids"]
            expected = len(answered) - len(before_outage)
            assert wait_for(lambda n=expected: spooled_rows(spooled) == n, timeout=30)
        assert wait_for(lambda: any("wait for the team server" in reason
                                    for reason in health(base).get("reasons", ())),
                        timeout=30)

        # ...and comes back: everything is sent, once
        team.start()
        for _ in range(2):
            answered += predict(base)["request_ids"]
        assert wait_for(lambda: set(answered) <= set(logged_ids(team)), timeout=90), \
            proc.stderr
        ids = [i for i in logged_ids(team) if i not in before]
        assert len(ids) == len(set(ids)) == len(answered)  # none lost, none doubled
        assert set(ids) == set(answered)
        assert wait_for(lambda: spooled_rows(spooled) == 0, timeout=30)
        assert wait_for(lambda: health(base)["status"] == "ok", timeout=60)

        # the alias moves on the server: the service follows it
        release(team, team.versions[1].ref)
        assert wait_for(lambda: predict(base)["model"] == team.versions[1].ref, timeout=60)
    finally:
        if proc.poll() is None:
            out, err = stop(proc)
    assert "stopped;" in out
    frame = server_log(team)
    assert frame["request_id"].is_unique
    with Store(team.db_url, audit_key_path=team.home / "audit.key") as store:
        serving = [r for r in store.runs.search() if r.name == "serve cancer@production"][0]
        assert serving.status == "finished" and serving.user == "runner-user"
        assert {b.source for b in store.predictions.batches("cancer")} == {"service"}


def test_serve_with_a_token_that_may_not_ship_predictions_is_one_line(in_team_mode, project):
    team = in_team_mode
    env = {**os.environ, "MLOPS_HOME": str(project.root), "MLOPS_URL": team.url,
           "MLOPS_TOKEN": team.tokens["writer"]}
    done = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "serve",
                           "cancer@production", "--port", str(free_port())],
                          cwd=project.root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("mlops: error: ") and "'predictions' permission" in lines[-1]
    assert "Traceback" not in done.stderr


def test_a_service_killed_while_the_server_is_down_loses_nothing(in_team_mode, project):
    """kill -9 of the service during an outage: what it answered is in the spool, and
    the next `mlops serve` sends it once the server is back."""
    team = in_team_mode
    before = set(logged_ids(team))
    base, proc = start_serve(project, team)
    spooled = project.home / "spool" / f"uid-{os.geteuid()}" / "pending.jsonl"
    try:
        answered = predict(base)["request_ids"]
        assert wait_for(lambda: set(answered) <= set(logged_ids(team)), timeout=60)
        team.stop()
        outage = []
        for _ in range(3):
            outage += predict(base, rows=5)["request_ids"]
        assert wait_for(lambda: spooled_rows(spooled) == len(outage), timeout=30)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    team.start()
    base, proc = start_serve(project, team)
    try:
        answered += outage + predict(base)["request_ids"]
        assert wait_for(lambda: set(answered) <= set(logged_ids(team)), timeout=90)
        assert wait_for(lambda: spooled_rows(spooled) == 0, timeout=30)
    finally:
        stop(proc)
    ids = [i for i in logged_ids(team) if i not in before]
    assert sorted(ids) == sorted(answered)  # none lost, none doubled
