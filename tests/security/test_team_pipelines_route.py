"""POST /api/v1/pipelines with hostile bodies: each is a 4xx naming the problem, and
nothing is written (the server's database is checked after)."""

from __future__ import annotations

import pytest

from jupyter_mlops.store import Store

from ..team import team_server

DIGEST = "blake3:" + "0" * 64


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite")


@pytest.mark.parametrize("body", [
    [],
    {"call": "drop_table", "args": {}},
    {"call": "start"},
    {"call": "start", "args": {"name": "x"}},
    {"call": "start", "args": []},
    {"call": "start", "args": {"name": "p", "spec_path": "p.yaml", "spec_digest": "md5:00",
                               "trigger": "manual", "steps": []}},
    {"call": "start", "args": {"name": "p", "spec_path": "p.yaml", "spec_digest": DIGEST,
                               "trigger": "cron", "steps": []}},
    {"call": "start", "args": {"name": "p", "spec_path": "p.yaml", "spec_digest": DIGEST,
                               "trigger": "manual", "steps": ["a"] * 1001}},
    {"call": "start", "args": {"name": "p" * 300, "spec_path": "p.yaml",
                               "spec_digest": DIGEST, "trigger": "manual", "steps": []}},
    {"call": "update_step", "args": {"pipeline_run_id": 1, "step": "a", "status": "done"}},
    {"call": "update_step", "args": {"pipeline_run_id": 1, "step": "a",
                                     "output_files": {"f": "../../etc/passwd"}}},
    {"call": "update_step", "args": {"pipeline_run_id": 1, "step": "a", "id": 5}},
    {"call": "update_step", "args": {"pipeline_run_id": 2**63, "step": "a"}},
    {"call": "update_step", "args": {"pipeline_run_id": 1, "step": "a",
                                     "failure": {"kind": "notebook", "message": "x"}}},
    {"call": "update_step", "args": {"pipeline_run_id": 1, "step": "a", "failure": {
        "$type": "StepFailure", "fields": {"kind": "evil", "message": "x"}}}},
    {"call": "update_step", "args": {"pipeline_run_id": 1, "step": "a", "failure": {
        "$type": "Popen", "fields": {"args": ["sh"]}}}},
    {"call": "update_step", "args": {"pipeline_run_id": 1, "step": "a", "warnings": "x"}},
    {"call": "update_step", "args": {"pipeline_run_id": 1, "step": "a",
                                     "ended_at": {"$float": "nan"}}},
    {"call": "set_run_tags", "args": {"run_id": 1, "tags": {"owner": "me"}}},
    {"call": "set_run_tags", "args": {"run_id": 1, "tags": {"mlops.step": 3}}},
    {"call": "finish", "args": {"pipeline_run_id": True, "status": "finished"}},
    {"call": "finish", "args": {"pipeline_run_id": 1, "status": "running"}},
])
def test_a_hostile_body_is_refused_and_writes_nothing(team, body):
    answer = team.post("/api/v1/pipelines", "runner", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["kind"] == "invalid"
    with Store(team.db_url) as store:
        assert [p for p in store.pipelines.recent() if p.name != "nightly"] == []


def test_a_body_nested_too_deep_is_refused(team):
    deep = "[" * 200 + "]" * 200
    answer = team.post("/api/v1/pipelines", "runner",
                       data=f'{{"call": "start", "args": {deep}}}',
                       headers={"Content-Type": "application/json"})
    assert answer.status_code == 422


def test_only_the_user_who_started_a_pipeline_run_moves_it_on(team):
    from jupyter_mlops.store import codec

    started = team.post("/api/v1/pipelines", "runner", json={"call": "start", "args": {
        "name": "nightly", "spec_path": "p.yaml", "spec_digest": DIGEST,
        "trigger": "schedule", "steps": ["train"]}})
    assert started.status_code == 200, started.text
    number = codec.decode(started.json()["result"])
    moves = [{"call": "finish", "args": {"pipeline_run_id": number, "status": "failed",
                                         "error": "sabotage"}},
             {"call": "heartbeat", "args": {"pipeline_run_id": number}},
             {"call": "update_step", "args": {"pipeline_run_id": number, "step": "train",
                                              "status": "failed"}}]
    for move in moves:  # a writer (and the admin) is not the runner that started it
        for role in ("writer", "admin"):
            answer = team.post("/api/v1/pipelines", role, json=move)
            assert answer.status_code == 403, (role, move, answer.text)
            assert "not started by" in answer.json()["error"]["message"]
    with Store(team.db_url) as store:
        assert store.pipelines.get(number).status == "running"
    done = team.post("/api/v1/pipelines", "runner", json={"call": "finish", "args": {
        "pipeline_run_id": number, "status": "finished"}})
    assert done.status_code == 200, done.text
    with Store(team.db_url) as store:
        assert store.pipelines.get(number).status == "finished"
        assert store.pipelines.owner(number) == "runner-user"
