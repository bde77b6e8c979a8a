"""`mlops push URL`: an embedded project copied into a real team server (SQLite and
PostgreSQL), twice, interrupted, refused, and with hostile import bodies."""

from __future__ import annotations

import json
import math
import re

import blake3
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import jupyter_mlops as mlops
from jupyter_mlops.cli.main import main
from jupyter_mlops.errors import Conflict, PermissionDenied
from jupyter_mlops.project import find_project
from jupyter_mlops.registry.identity import identity_for
from jupyter_mlops.registry.releases import Registry
from jupyter_mlops.remote.client import Client
from jupyter_mlops.remote.push import push
from jupyter_mlops.store import Store
from jupyter_mlops.store.exchange import KINDS, MAX_CELL
from jupyter_mlops.store.gates import GateResult
from jupyter_mlops.team_protocol import ServerUnreachable
from jupyter_mlops.teamserver.home import ServerHome
from jupyter_mlops.teamserver.routes import ROUTES

from .team import team_server

CONFIG = """
[registry]
protected_aliases = ["production"]
[users.alice]
roles = ["reviewer"]
"""
LONG_HISTORY = 12_000  # metric points of one run: more than one item (5,000 per item)


@pytest.fixture
def solo(project, tracker):
    """A project with two runs (params, tags, a long metric history with a NaN, a dataset,
    an artifact), churn:1..3, churn:3 approved for production, a pending request, a
    pipeline run, and its audit log."""
    (project.home / "config.toml").write_text(CONFIG)
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = np.arange(20) % 2
    with mlops.start_run(name="prep"):
        mlops.log_params({"rows": 20})
        for i in range(LONG_HISTORY):
            mlops.log_metric("loss", 1 / (i + 1), step=i)
        mlops.log_metric("odd", math.nan)
        mlops.log_metric("big", math.inf)
        mlops.log_dataset(pd.DataFrame({"a": [1, 2, 3]}), name="train")
    with mlops.start_run(name="train"):
        mlops.log_params({"C": 1.0})
        mlops.set_tags({"team": "churn"})
        (project.root / "notes.txt").write_text("hello")
        mlops.log_artifact(project.root / "notes.txt")
        for c in (0.1, 1.0, 10.0):
            mlops.log_model(LogisticRegression(C=c).fit(X, y), name="churn")
    fresh = find_project()
    with Store.for_project(fresh) as store:
        registry = Registry(fresh, store)
        request = registry.request_release("churn:3", "production",
                                           identity_for("bob", fresh), "ship it")
        registry.approve(request.id, identity_for("alice", fresh), "looks right")
        registry.request_release("churn:2", "production", identity_for("bob", fresh),
                                 "maybe this one")
        pipeline = store.pipelines.start("daily", "pipelines/daily.yaml", "blake3:" + "1" * 64,
                                         "manual", ["prep", "fit"])
        store.pipelines.update_step(pipeline, "prep", status="finished", run_id=1,
                                    cache_key="k1")
        store.pipelines.finish(pipeline, "finished")
        first_prep = store.pipelines.get(pipeline).steps[0].id
        again = store.pipelines.start("daily", "pipelines/daily.yaml", "blake3:" + "1" * 64,
                                      "schedule", ["prep", "fit"])
        store.pipelines.update_step(again, "prep", status="cached", cached_from=first_prep)
        store.pipelines.finish(again, "finished")
        store.gates.add_evaluation("churn", 3, "blake3:" + "4" * 64, {"accuracy": 0.9})
        store.gates.record([GateResult("churn", 3, "accuracy >= 0.8", None, None, True, 0.9,
                                       0.8, "blake3:" + "4" * 64, "ok", 1.7e9)], "bob")
    return fresh


def local_counts(project) -> dict[str, int]:
    with Store.for_project(project) as store:
        return _counts(store)


def _counts(store: Store) -> dict[str, int]:
    conn = store._conn
    return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("runs", "params", "tags", "metrics", "latest_metrics",
                          "run_datasets", "run_artifacts", "model_versions", "aliases",
                          "release_requests", "pipeline_runs", "step_runs", "evaluations",
                          "gate_results", "audit_log")}


def server_store(server) -> Store:
    return ServerHome(server.home).open_store()


def do_push(project, server, role="admin", **kwargs):
    client = Client(server.url, server.tokens[role])
    try:
        return push(project, client, **kwargs)
    finally:
        client.close()


def check_complete(project, server) -> None:
    """The server holds exactly the project's rows (its own audit rows aside), churn:3 is
    the same bytes, the audit chain verifies under the server's key, and the approval
    moved by the project is the one the server has."""
    here = local_counts(project)
    with Store.for_project(project) as mine, server_store(server) as theirs:
        there = _counts(theirs)
        assert {k: v for k, v in there.items()} == here
        assert theirs.models.resolve("churn:3").digest == mine.models.resolve("churn:3").digest
        assert theirs.models.resolve("churn@production").version == 3
        report = theirs.audit.verify()
        assert report.ok and report.rows == here["audit_log"], report
        assert theirs.audit.alias_problems() == []
        for run in mine.runs.search(limit=10):
            other = theirs.runs.resolve(run.uuid)
            assert (other.id, other.name, other.params) == (run.id, run.name, run.params)
            assert len(theirs.runs.metric_history(other.id)) == \
                len(mine.runs.metric_history(run.id))
        newest, oldest = theirs.pipelines.recent("daily")
        cached = {step.step: step for step in newest.steps}["prep"]
        made = {step.step: step for step in oldest.steps}["prep"]
        assert cached.status == "cached" and cached.cached_from == made.id
        assert made.run_id == theirs.runs.resolve(mine.runs.get(1).uuid).id
        imported = theirs.audit.entries()[0].payload["imported"]
        assert imported["by"] == "admin-user" and imported["hash"].startswith("hmac-sha256:")


@pytest.fixture
def server(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_server(request, tmp_path_factory):
    """A fresh server on each database."""
    return team_server(request, tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def shared_server(request, tmp_path_factory):
    """One server for the tests that write nothing to it."""
    return team_server(request, tmp_path_factory, "sqlite")


def test_push_twice_adds_nothing(solo, any_server, monkeypatch, capsys):
    server = any_server
    monkeypatch.setenv("MLOPS_TOKEN", server.tokens["admin"])
    assert main(["push", server.url]) == 0
    first = capsys.readouterr().out
    assert "pushed " in first and "2 runs" in first and "3 model versions" in first, first
    check_complete(solo, server)
    assert main(["push", server.url]) == 0
    second = capsys.readouterr().out
    assert second.startswith("pushed nothing; already there: "), second
    assert "2 runs" in second and f"{LONG_HISTORY + 2} metric points" in second
    check_complete(solo, server)


def test_dry_run_sends_nothing(solo, server, monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_TOKEN", server.tokens["admin"])
    assert main(["push", server.url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would send ") and "2 runs" in out
    # every file is missing (how many: the models, the data, and a source snapshot when
    # the test runner's own source was snapshotted, which depends on how pytest started)
    lacking = re.search(r"files the server lacks: (\d+) of (\d+) \(", out)
    assert lacking and lacking[1] == lacking[2] and int(lacking[1]) >= 4, out
    with server_store(server) as theirs:
        assert _counts(theirs)["runs"] == 0


def test_push_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        main(["push", "--help"])
    text = capsys.readouterr().out
    assert "--dry-run" in text and "admin" in text and "twice" in text


def test_a_push_cut_off_by_a_dead_server_is_finished_by_pushing_again(solo, any_server):
    server = any_server
    def kill_after_the_first_run(report):
        if report.added["run"]:
            server.kill()

    with pytest.raises(ServerUnreachable):
        do_push(solo, server, progress=kill_after_the_first_run, batch_items=2)
    server.start()
    with server_store(server) as theirs:
        partial = _counts(theirs)
    assert partial["runs"] == 1 and partial["audit_log"] == 0
    report = do_push(solo, server, batch_items=2)
    assert report.present["run"] + report.added["run"] == 2
    check_complete(solo, server)


def test_a_token_without_admin_gets_403_and_nothing_is_written(solo, server):
    with pytest.raises(PermissionDenied, match="admin"):
        do_push(solo, server, role="writer")
    item = {"kind": "environment", "row": {"digest": "blake3:" + "2" * 64, "python": "3",
                                           "packages": "{}"}}
    for role in ("writer", "runner", "reviewer", "reader"):
        answer = server.post("/api/v1/import", role, json={"project": "p", "items": [item]})
        assert answer.status_code == 403, answer.text
    with server_store(server) as theirs:
        assert theirs._conn.execute("SELECT COUNT(*) FROM environments").fetchone()[0] == 0


def test_a_model_version_that_differs_on_the_server_is_refused_whole(solo, server):
    other = b"another registry's churn:2"
    digest = "blake3:" + blake3.blake3(other).hexdigest()
    assert server.request("PUT", f"/api/v1/blobs/{digest}", data=other).status_code == 200
    items = [{"kind": "artifact", "row": {"digest": digest, "size": len(other),
                                          "created_at": 1.0}},
             {"kind": "model_version", "row": {
                 "name": "churn", "version": 2, "run": None, "digest": digest,
                 "flavor": "skops", "signature": None, "input_datasets": None,
                 "created_at": 1.0}}]
    assert server.post("/api/v1/import", json={"project": "elsewhere",
                                               "items": items}).status_code == 200
    with pytest.raises(Conflict, match=f"churn:2 is {digest} on the server but blake3:"):
        do_push(solo, server)
    with server_store(server) as theirs:
        assert [v.version for v in theirs.models.versions("churn")] == [2]
        assert theirs._conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == 0


def test_a_pending_request_pushed_is_approved_on_the_server(solo, server):
    do_push(solo, server)
    with server_store(server) as theirs:
        pending = theirs.releases.list(status="pending")
    assert [(r.name, r.version, r.requester) for r in pending] == [("churn", 2, "bob")]
    answer = server.post(f"/api/v1/releases/{pending[0].id}/approve", "reviewer",
                         json={"reason": "checked on the server"})
    assert answer.status_code == 200, answer.text
    with server_store(server) as theirs:
        assert theirs.models.resolve("churn@production").version == 2
        assert theirs.audit.verify().ok


def test_push_to_postgresql_keeps_ids_and_versions(solo, request, tmp_path_factory):
    server = team_server(request, tmp_path_factory, "postgresql")
    first = do_push(solo, server)
    assert first.moved_runs == 0 and first.added["model_version"] == 3
    check_complete(solo, server)
    again = do_push(solo, server)
    assert not any(again.added.values()) and again.present["audit"] == first.added["audit"]
    check_complete(solo, server)
    # the identity sequences moved past the pushed ids: the next run gets a new one
    stream = "a" * 32
    answer = server.post("/api/v1/records", "writer", json={"stream": stream, "records": [
        {"seq": 1, "version": 1, "op": "start",
         "run": {"uuid": stream, "name": "after", "started_at": 1.8e9,
                 "source_kind": "notebook"}}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["run_id"] == 3


def test_the_route_table_names_every_kind():
    route = next(r for r in ROUTES if r.path.endswith("/import"))
    assert route.permission == "admin"
    assert set(route.request["properties"]["items"]["items"]["properties"]["kind"]["enum"]) \
        == set(KINDS)


ENV = {"digest": "blake3:" + "3" * 64, "python": "3.11", "packages": "{}"}


@pytest.mark.parametrize("body", [
    [],
    {"project": "p"},
    {"project": "", "items": [{"kind": "environment", "row": ENV}]},
    {"project": "p", "items": []},
    {"project": "p", "items": [{"kind": "users", "row": {}}]},
    {"project": "p", "items": [{"kind": "environment", "row": {**ENV, "extra": 1}}]},
    {"project": "p", "items": [{"kind": "environment", "row": {"digest": ENV["digest"]}}]},
    {"project": "p", "items": [{"kind": "environment", "row": {**ENV, "digest": "md5:x"}}]},
    {"project": "p", "items": [{"kind": "environment", "row": {**ENV, "python": 3}}]},
    {"project": "p", "items": [{"kind": "environment", "row": {**ENV, "python": "\ud800"}}]},
    {"project": "p", "items": [{"kind": "environment", "row": {**ENV, "python": "a\x00"}}]},
    {"project": "p", "items": [{"kind": "environment", "row": ENV, "sneaky": []}]},
    {"project": "p", "items": [{"kind": "alias", "row": {
        "name": "m", "alias": "a", "version": 10**30, "updated_at": 1.0}}]},
    {"project": "p", "items": [{"kind": "alias", "row": {
        "name": "m", "alias": "a", "version": True, "updated_at": 1.0}}]},
    {"project": "p", "items": [{"kind": "alias", "row": {
        "name": "m", "alias": "a", "version": 1, "updated_at": "yesterday"}}]},
    {"project": "p", "items": [{"kind": "environment", "row": {
        **ENV, "packages": "x" * (MAX_CELL + 1)}}]},
    {"project": "p", "items": [{"kind": "metrics", "row": {"run": "b" * 32, "offset": 0},
                                "points": [["loss", 1.0, 0]]}]},
    {"project": "p", "items": [{"kind": "metrics", "row": {"run": "b" * 32, "offset": -1},
                                "points": []}]},
    {"project": "p", "items": [{"kind": "audit", "row": {
        "id": 1, "at": 1.0, "actor": "a", "action": "x", "subject": "s", "reason": None,
        "payload": "[1]", "prev_hash": "h", "hash": "h"}}]},
    {"project": "p", "items": [{"kind": "run", "row": {"$type": "Run", "fields": {}}}]},
], ids=lambda body: json.dumps(body)[:60])
def test_hostile_import_bodies_get_422_and_write_nothing(shared_server, body):
    answer = shared_server.post("/api/v1/import", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["kind"] == "invalid"
    with server_store(shared_server) as theirs:
        assert theirs._conn.execute("SELECT COUNT(*) FROM environments").fetchone()[0] == 0


def test_a_server_in_use_gives_new_ids_and_references_follow(solo, server):
    """Runs and release requests whose ids the server already used get new ones; the
    models, steps and audit rows that name them follow, and the pending request can be
    approved there (its signed audit row names its new id)."""
    stream = "c" * 32
    started = server.post("/api/v1/records", "writer", json={"stream": stream, "records": [
        {"seq": 1, "version": 1, "op": "start",
         "run": {"uuid": stream, "name": "theirs", "started_at": 1.8e9,
                 "source_kind": "notebook"}}]})
    assert started.status_code == 200 and started.json()["run_id"] == 1
    other = b"the server's own model"
    digest = "blake3:" + blake3.blake3(other).hexdigest()
    assert server.request("PUT", f"/api/v1/blobs/{digest}", data=other).status_code == 200
    assert server.post("/api/v1/import", json={"project": "elsewhere", "items": [
        {"kind": "artifact", "row": {"digest": digest, "size": len(other), "created_at": 1.0}},
        {"kind": "model_version", "row": {
            "name": "other", "version": 1, "run": None, "digest": digest, "flavor": "skops",
            "signature": None, "input_datasets": None, "created_at": 1.0}}]}
                       ).status_code == 200
    requested = server.post("/api/v1/releases", "writer",
                            json={"model": "other:1", "alias": "production", "reason": "r"})
    assert requested.status_code == 200, requested.text

    report = do_push(solo, server)
    assert report.moved_runs == 2 and "2 runs got other ids" in report.summary()
    with Store.for_project(solo) as mine, server_store(server) as theirs:
        train = theirs.runs.resolve(mine.runs.get(2).uuid)
        assert train.id != 2 and train.name == "train"
        assert [m.version for m in theirs.models.for_run(train.id)] == [1, 2, 3]
        pending = theirs.releases.list(status="pending", name="churn")
        assert [r.id for r in pending] == [3]
        assert theirs.audit.verify().ok
    answer = server.post("/api/v1/releases/3/approve", "reviewer", json={"reason": "ok"})
    assert answer.status_code == 200, answer.text
    again = do_push(solo, server)
    assert not any(again.added.values()), again.summary()


def test_an_alias_pointing_elsewhere_is_refused_unless_the_team_moved_it_since(shared_server):
    items = []
    for version, data in ((1, b"m one"), (2, b"m two")):
        digest = "blake3:" + blake3.blake3(data).hexdigest()
        assert shared_server.request("PUT", f"/api/v1/blobs/{digest}",
                                     data=data).status_code == 200
        items += [{"kind": "artifact", "row": {"digest": digest, "size": len(data),
                                               "created_at": 1.0}},
                  {"kind": "model_version", "row": {
                      "name": "m", "version": version, "run": None, "digest": digest,
                      "flavor": "skops", "signature": None, "input_datasets": None,
                      "created_at": 1.0}}]
    alias = {"kind": "alias", "row": {"name": "m", "alias": "staging", "version": 1,
                                      "updated_at": 1.0}}
    assert shared_server.post("/api/v1/import", json={"project": "a", "items": [
        *items, alias]}).status_code == 200
    elsewhere = {"kind": "alias", "row": {**alias["row"], "version": 2}}
    answer = shared_server.post("/api/v1/import", json={"project": "b", "items": [elsewhere]})
    assert answer.status_code == 409
    assert "m@staging points at version 1 on the server but at 2" in answer.text


def test_push_says_in_one_line_what_is_missing(project, shared_server, monkeypatch, capsys,
                                               tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("MLOPS_TOKEN", raising=False)
    assert main(["push", shared_server.url]) == 1
    assert capsys.readouterr().err.strip() == (
        f"mlops: error: no token for {shared_server.url}: run `mlops login "
        f"{shared_server.url}` (or set MLOPS_TOKEN)")
    monkeypatch.setenv("MLOPS_URL", shared_server.url)
    assert main(["push", shared_server.url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already records into the team server" in err


def test_a_project_whose_audit_chain_is_broken_is_not_pushed(solo, shared_server):
    import sqlite3

    from jupyter_mlops.errors import IntegrityError

    with sqlite3.connect(solo.db_path) as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET reason = 'edited' WHERE id = 1")
    with pytest.raises(IntegrityError, match=r"audit log .*\(row 1: .*nothing was pushed"):
        do_push(solo, shared_server)
    with server_store(shared_server) as theirs:
        assert _counts(theirs)["runs"] == 0


def test_a_run_pushed_while_it_ran_is_finished_by_the_next_push(project, tracker, server):
    run = mlops.start_run(name="long")
    mlops.log_metric("loss", 1.0, step=0)
    first = do_push(project, server)
    assert first.added["run"] == 1 and first.added["metric"] == 1
    mlops.log_metric("loss", 0.5, step=1)
    mlops.log_params({"late": "yes"})
    mlops.end_run()
    again = do_push(project, server)
    assert again.added["metric"] == 1 and again.present["run"] == 1
    with server_store(server) as theirs:
        there = theirs.runs.resolve(run.uuid)
        assert there.status == "finished" and there.ended_at is not None
        assert there.params["late"] == "yes"
        assert [p.value for p in theirs.runs.metric_history(there.id)] == [1.0, 0.5]
