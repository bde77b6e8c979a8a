"""Reads in team mode: `RemoteStore` answered by a real `mlops server` (POST /api/v1/read),
on SQLite and PostgreSQL, and the codec that carries store values over the wire."""

from __future__ import annotations

import math
import uuid

import pytest

from jupyter_mlops.errors import InvalidInput, NotFound, PermissionDenied
from jupyter_mlops.remote.client import Client
from jupyter_mlops.remote.store import RemoteStore
from jupyter_mlops.store import codec
from jupyter_mlops.store.records import ModelVersion, Run
from jupyter_mlops.team_protocol import AuthenticationFailed

from .team import USERS, team_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    server = team_server(request, tmp_path_factory, request.param)
    stream = uuid.uuid4().hex
    records = [
        {"seq": 1, "version": 1, "op": "start",
         "run": {"uuid": stream, "name": "remote <script>", "started_at": 1_700_000_000.0,
                 "source_kind": "notebook", "user": "mallory"}},
        {"seq": 2, "version": 1, "op": "params", "params": {"C": "0.5"}},
        {"seq": 3, "version": 1, "op": "metrics",
         "points": [["acc", 0.75, None, 1_700_000_001.0], ["loss", "nan", 1, 1_700_000_002.0],
                    ["loss", 0.5, 2, 1_700_000_003.0]]},
        {"seq": 4, "version": 1, "op": "end", "status": "finished", "error": None},
    ]
    answer = server.post("/api/v1/records", "writer", json={"stream": stream,
                                                             "records": records})
    assert answer.status_code == 200, answer.text
    server.run_id = answer.json()["run_id"]
    return server


def remote(server, role: str = "reader") -> RemoteStore:
    return RemoteStore(Client(server.url, server.tokens[role]))


def test_reads_answer_like_the_embedded_store(server):
    with remote(server) as store:
        run = store.runs.get(server.run_id)
        assert isinstance(run, Run)
        assert run.name == "remote <script>" and run.status == "finished"
        assert run.user == USERS["writer"]  # the token's user, never the client's "mallory"
        assert run.params == {"C": "0.5"} and run.metrics["acc"] == 0.75
        [found] = [r for r in store.runs.search("params.C = '0.5'") if r.id == server.run_id]
        assert store.runs.resolve(run.uuid[:12]).id == server.run_id
        history = store.runs.metric_history(server.run_id, "loss")
        assert [p.step for p in history] == [1, 2] and math.isnan(history[0].value)
        assert store.models.names() == [] and store.releases.aliases() == {}
        assert store.audit.verify().ok


def test_a_missing_run_is_not_found(server):
    with remote(server) as store, pytest.raises(NotFound):
        store.runs.get(10**9)


def test_writes_are_not_reachable_through_reads(server):
    with remote(server, "admin") as store:
        with pytest.raises(PermissionDenied, match="only the server writes"):
            store.releases.decide(1, decision="approved", actor="alice", reason="x")
        with pytest.raises(PermissionDenied):
            store.runs.create(object())
    for call in ("releases.decide", "runs.end", "tokens.create", "runs._conn",
                 "runs.__init__", "audit.seal", "predictions.batches"):
        answer = server.post("/api/v1/read", "admin", json={"call": call, "args": []})
        assert answer.status_code == 422, (call, answer.text)
        assert "not a read" in answer.json()["error"]["message"]


@pytest.mark.parametrize("body, problem", [
    ({"call": "runs.get", "args": [1, 2, 3]}, "runs.get"),
    ({"call": "runs.get", "args": "1"}, "args must be a list"),
    ({"call": "runs.get", "args": [1], "kwargs": {"nope": 1}}, "runs.get"),
    ({"call": "runs.get", "args": [{"$type": "os.system", "fields": {}}]}, "unknown record"),
    ({"call": "runs.get", "args": [{"$float": "1e999"}]}, "malformed"),
    ({"call": "runs.search", "args": ["metrics.acc >>> 1"]}, "filter"),
    ({"call": 7}, "the body must be"),
    ([], "the body must be"),
])
def test_malformed_reads_are_422_and_say_why(server, body, problem):
    answer = server.post("/api/v1/read", "reader", json=body)
    assert answer.status_code == 422, answer.text
    assert problem in answer.json()["error"]["message"]


def test_reads_need_a_valid_token(server):
    assert server.post("/api/v1/read", None, json={"call": "runs.search"}).status_code == 401
    with pytest.raises(AuthenticationFailed):
        RemoteStore(Client(server.url, "mlops_wrong")).runs.search()


@pytest.mark.parametrize("value", [
    None, True, 3, 1.5, "text", [1, "a"], (1, (2, "b")), {"a": 1}, {("m", "prod"): 3},
    {"$sneaky": 1}, float("inf"), float("-inf"),
    ModelVersion(name="m", version=2, run_id=None, digest="blake3:" + "a" * 64,
                 flavor="sklearn", signature={"inputs": [1]}, created_at=1.0,
                 input_datasets=("blake3:" + "b" * 64,)),
])
def test_the_codec_gives_back_what_it_was_given(value):
    assert codec.decode(codec.encode(value)) == value


def test_the_codec_carries_nan_as_standard_json():
    import json

    text = json.dumps(codec.encode([float("nan")]), allow_nan=False)
    assert math.isnan(codec.decode(json.loads(text))[0])


@pytest.mark.parametrize("bad", [
    {"$type": "Path", "fields": {}}, {"$type": "Run", "fields": {"nope": 1}},
    {"$type": "Run", "fields": {}}, {"$tuple": "x"}, {"$map": [[1]]}, {"$x": 1},
    {"$map": [[[1], 2]]}, {"$float": "NaN"},
])
def test_the_codec_refuses_what_it_did_not_make(bad):
    with pytest.raises(InvalidInput):
        codec.decode(bad)


def test_the_codec_refuses_deep_nesting():
    value: object = 1
    for _ in range(100):
        value = [value]
    with pytest.raises(InvalidInput, match="too deep"):
        codec.decode(value)
