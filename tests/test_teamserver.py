"""The team server (`mlops server`), started for real, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import blake3
import pytest
import requests

from jupyter_mlops.team_protocol import (
    API_VERSION,
    MAX_JSON_BODY,
    MAX_RECORDS_PER_BATCH,
    ROLE_PERMISSIONS,
    ROLES,
)
from jupyter_mlops.teamserver.routes import ROUTES

from .team import USERS, mlops, team_server

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
DIGEST = "blake3:" + "0" * 64


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, request.param)


def concrete(path: str) -> str:
    return path.replace("{digest}", DIGEST).replace("{id}", "1")


def digest_of(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def new_stream() -> str:
    return uuid.uuid4().hex


def start_record(seq: int = 1, name: str = "remote-run", user: str = "mallory") -> dict:
    return {"seq": seq, "version": 1, "op": "start",
            "run": {"uuid": "ignored", "name": name, "started_at": 1_700_000_000.0,
                    "source_kind": "notebook", "user": user, "host": "laptop", "pid": 42}}


def metrics(seq: int, value: float, step: int) -> dict:
    return {"seq": seq, "version": 1, "op": "metrics",
            "points": [["loss", value, step, 1_700_000_001.0]]}


def send(server, stream: str, records: list[dict], role: str = "writer"):
    return server.post("/api/v1/records", role, json={"stream": stream, "records": records})


def put_blob(server, data: bytes, role: str = "writer", digest: str | None = None):
    return server.request("PUT", f"/api/v1/blobs/{digest or digest_of(data)}", role,
                          data=data)


# -- the door ----------------------------------------------------------------------------

def test_version_and_whoami_name_the_token_user_and_roles(server):
    version = server.get("/api/v1/version", "reader")
    assert version.status_code == 200
    assert version.json()["api"] == API_VERSION
    for role in ROLES:
        who = server.get("/api/v1/whoami", role).json()
        assert who["user"] == USERS[role] and who["roles"] == [role]
        assert set(who["permissions"]) == ROLE_PERMISSIONS[role]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_and_method_refuses_a_request_without_a_token(server, route):
    for method in METHODS:
        answer = server.request(method, concrete(route.path), None, data=b"{}")
        assert answer.status_code == 401, (method, answer.text)
        assert answer.json()["error"]["kind"] == "authentication"
        bad = server.request(method, concrete(route.path), None, data=b"{}",
                             headers={"Authorization": "Basic YWxpY2U6cHc="})
        assert bad.status_code == 401


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_route_refuses_a_token_lacking_its_permission(server, route):
    lacking = [role for role in ROLES if route.permission not in ROLE_PERMISSIONS[role]]
    for role in lacking:
        answer = server.request(route.method, concrete(route.path), role, data=b"{}")
        assert answer.status_code == 403, (role, answer.text)
        error = answer.json()["error"]
        assert error["kind"] == "permission" and route.permission in error["message"]
    granted = [role for role in ROLES if role not in lacking]
    answer = server.request(route.method, concrete(route.path), granted[0], data=b"{}")
    assert answer.status_code not in (401, 403), answer.text


def test_a_method_a_route_does_not_take_is_405_after_the_token(server):
    answer = server.request("DELETE", "/api/v1/records", "admin")
    assert answer.status_code == 405
    assert "POST" in answer.json()["error"]["message"]


def test_unknown_paths_need_a_token_then_are_404(server):
    assert server.get("/api/v1/nothing", None).status_code == 401
    assert server.get("/api/v1/nothing", "reader").status_code == 404


@pytest.mark.parametrize("given,upgrade", [("0", "this machine"), ("99", "the server")])
def test_an_api_version_the_server_does_not_speak_is_426_naming_both(server, given,
                                                                       upgrade):
    answer = server.get("/api/v1/version", "reader", headers={"X-Mlops-Api": given})
    assert answer.status_code == 426
    message = answer.json()["error"]["message"]
    assert f"API {given}" in message and f"API {API_VERSION}" in message and upgrade in message


def test_a_foreign_host_is_refused_before_anything(server):
    answer = server.get("/api/v1/version", "reader", headers={"Host": "evil.example"})
    assert answer.status_code == 403
    assert "evil.example" in answer.json()["error"]["message"]


def test_a_revoked_or_expired_token_is_401(server):
    made = mlops(server.home, "token", "create", "temp", "--role", "reader")
    secret = made.stdout.splitlines()[0]
    headers = {"Authorization": f"Bearer {secret}"}
    assert requests.get(server.url + "/api/v1/whoami", headers=headers).status_code == 200
    token_id = made.stdout.splitlines()[1].split()[1]
    mlops(server.home, "token", "revoke", token_id)
    assert requests.get(server.url + "/api/v1/whoami", headers=headers).status_code == 401
    listing = mlops(server.home, "token", "list").stdout
    assert "revoked" in listing and secret not in listing and secret[:12] in listing


@pytest.mark.parametrize("args,problem", [
    (["Alice", "--role", "reader"], "user name 'Alice' refused"),
    (["../x", "--role", "reader"], "refused"),
    (["<script>", "--role", "reader"], "refused"),
    (["bob", "--role", "owner"], "invalid choice: 'owner'"),
    (["bob", "--role", "reader", "--expires-days", "-1"], "--expires-days"),
    (["bob", "--role", "reader", "--expires-days", "1e9"], "--expires-days"),
])
def test_token_create_refuses_bad_users_roles_and_expiries(server, args, problem):
    done = mlops(server.home, "token", "create", *args, check=False)
    assert done.returncode != 0 and problem in done.stderr
    assert "\n" not in done.stderr.strip().splitlines()[-1]


# -- records ------------------------------------------------------------------------------

def test_a_batch_is_applied_once_and_a_retry_adds_nothing(server):
    stream = new_stream()
    batch = [start_record(), {"seq": 2, "version": 1, "op": "params", "params": {"C": "0.5"}},
             metrics(3, 0.9, 0), metrics(4, 0.5, 1)]
    first = send(server, stream, batch)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["applied_seq"] == 4 and answer["models"] == []
    again = send(server, stream, batch)
    assert again.json() == answer
    more = send(server, stream, [metrics(4, 0.5, 1), metrics(5, 0.1, 2),
                                 {"seq": 6, "version": 1, "op": "heartbeat", "at": 1.7e9},
                                 {"seq": 7, "version": 1, "op": "source",
                                  "notebook": "train.ipynb", "code_digest": DIGEST},
                                 {"seq": 8, "version": 1, "op": "end", "status": "finished"}])
    assert more.json()["applied_seq"] == 8
    run = read_run(server, answer["run_id"])
    assert run["user"] == USERS["writer"]  # the token's user, not the record's "mallory"
    assert run["status"] == "finished" and run["notebook"] == "train.ipynb"
    assert run["history"] == [0.9, 0.5, 0.1]  # the retried seq 4 counted once


def read_run(server, run_id: int) -> dict:
    from jupyter_mlops.teamserver.home import ServerHome

    with ServerHome(server.home).open_store() as store:
        run = store.runs.get(run_id)
        history = [p.value for p in store.runs.metric_history(run_id, "loss")]
    return {"user": run.user, "status": run.status, "notebook": run.notebook,
            "history": history}


def test_a_runs_environment_is_kept_under_the_digest_the_server_computes(server):
    from jupyter_mlops.capture import environment_of
    from jupyter_mlops.teamserver.home import ServerHome

    start = start_record()
    start["run"]["env_digest"] = DIGEST  # the client's word, not taken
    start["environment"] = {"python": "3.11.9", "packages": {"numpy": "2.1.0",
                                                              "scikit-learn": "1.6.1"}}
    answer = send(server, new_stream(), [start])
    assert answer.status_code == 200, answer.text
    expected = environment_of("3.11.9", {"numpy": "2.1.0", "scikit-learn": "1.6.1"})
    with ServerHome(server.home).open_store() as store:
        run = store.runs.get(answer.json()["run_id"])
        assert run.env_digest == expected.digest != DIGEST and run.python == "3.11.9"
        assert store.environments.get(expected.digest).packages["numpy"] == "2.1.0"


@pytest.mark.parametrize("environment", [
    "3.11", {"python": 3.11, "packages": {}}, {"python": "3.11", "packages": ["numpy"]},
    {"python": "3.11", "packages": {"numpy": 2}}, {"python": "3.11\n", "packages": {}},
    {"python": "3.11", "packages": {"x" * 300: "1"}},
    {"python": "3.11", "packages": {f"p{i}": "1" for i in range(20_001)}},
])
def test_a_malformed_environment_is_422_and_starts_nothing(server, environment):
    stream = new_stream()
    answer = send(server, stream, [{**start_record(), "environment": environment}])
    assert answer.status_code == 422, answer.text
    assert send(server, stream, [metrics(2, 1.0, 0)]).status_code == 409  # no run began


def test_a_gap_is_409_carrying_the_applied_mark(server):
    stream = new_stream()
    send(server, stream, [start_record(), metrics(2, 1.0, 0)])
    gap = send(server, stream, [metrics(5, 1.0, 3)])
    assert gap.status_code == 409
    assert gap.json()["error"]["applied_seq"] == 2
    unknown = send(server, new_stream(), [metrics(3, 1.0, 0)])
    assert unknown.status_code == 409 and unknown.json()["error"]["applied_seq"] == 0


def test_another_users_token_may_not_write_into_a_stream(server):
    stream = new_stream()
    assert send(server, stream, [start_record()], "writer").status_code == 200
    other = send(server, stream, [metrics(2, 1.0, 0)], "runner")
    assert other.status_code == 403
    assert USERS["writer"] in other.json()["error"]["message"]


def test_a_model_needs_its_blob_and_a_retry_gets_its_version_back(server):
    data = b"model bytes " * 1000
    digest = digest_of(data)
    stream = new_stream()
    model = {"seq": 2, "version": 1, "op": "model", "name": "churn", "digest": digest,
             "size": len(data), "flavor": "sklearn", "signature": None, "profile": None}
    lacking = send(server, stream, [start_record(), model])
    assert lacking.status_code == 409 and "upload it first" in lacking.json()["error"]["message"]
    assert send(server, stream, [metrics(1, 1.0, 0)]).status_code == 409  # nothing applied
    missing = server.post("/api/v1/blobs/missing", "writer", json={"digests": [digest]})
    assert missing.json() == {"missing": [digest]}
    stored = put_blob(server, data)
    assert stored.json() == {"digest": digest, "size": len(data), "stored": True}
    assert put_blob(server, data).json()["stored"] is False  # known bytes: nothing stored
    assert server.post("/api/v1/blobs/missing", "writer",
                       json={"digests": [digest]}).json() == {"missing": []}
    first = send(server, stream, [start_record(), model])
    assert first.status_code == 200, first.text
    [registered] = first.json()["models"]
    assert registered["name"] == "churn" and registered["seq"] == 2
    retried = send(server, stream, [start_record(), model])
    assert retried.json()["models"] == [registered]
    got = server.get(f"/api/v1/blobs/{digest}", "reader")
    assert got.content == data and got.headers["X-Mlops-Digest"] == digest


def test_an_upload_whose_bytes_do_not_match_keeps_nothing(server):
    claimed = digest_of(b"the real bytes")
    answer = put_blob(server, b"other bytes", digest=claimed)
    assert answer.status_code == 409 and answer.json()["error"]["kind"] == "integrity"
    assert server.post("/api/v1/blobs/missing", "writer",
                       json={"digests": [claimed]}).json() == {"missing": [claimed]}
    assert not list((server.artifacts / "tmp").iterdir())


@pytest.mark.parametrize("path", ["blake3:../../etc/passwd", "..%2F..%2Fserver.toml",
                                  "blake3:" + "A" * 64, "sha256:" + "0" * 64, "<script>"])
def test_a_bad_digest_in_a_blob_path_is_422(server, path):
    assert put_blob(server, b"x", digest=path).status_code in (404, 422)
    assert server.get(f"/api/v1/blobs/{path}", "reader").status_code in (404, 422)


@pytest.mark.parametrize("body,problem", [
    ({"stream": "x", "records": []}, "uuid"),
    ({"stream": "<script>alert(1)</script>", "records": [{}]}, "uuid"),
    ({"records": [{"seq": 1}]}, "uuid"),
    ({"stream": "0" * 32, "records": "all"}, "non-empty list"),
    ({"stream": "0" * 32, "records": [{"seq": True, "version": 1, "op": "end"}]}, "seq"),
    ({"stream": "0" * 32, "records": [{"seq": 2**70, "version": 1, "op": "end"}]}, "seq"),
    ({"stream": "0" * 32, "records": [{"seq": 1, "version": 1, "op": "drop"}]}, "unknown"),
    ({"stream": "0" * 32, "records": [{"seq": 1, "version": 1, "op": "artifact",
                                       "name": "../x", "digest": DIGEST, "size": 1,
                                       "kind": "file"}]}, ".."),
    ({"stream": "0" * 32, "records": [{"seq": 1, "version": 1, "op": "heartbeat",
                                       "at": "now"}]}, "heartbeat"),
    ({"stream": "0" * 32, "records": [start_record(), start_record(2)]}, "seq 1"),
    ({"stream": "0" * 32, "records": [start_record(), metrics(3, 1.0, 0)]}, "consecutive"),
    ({"stream": "0" * 32, "records": [{**start_record(), "run": {"started_at": "x"}}]},
     "started_at"),
    ([1, 2], "body must be"),
    ({"stream": "0" * 32, "records": [{**start_record(), "run": {"started_at": 2**80}}]},
     "started_at"),
    ({"stream": "0" * 32, "records": [{"seq": 1, "version": 1, "op": "metrics",
                                       "points": [["k", 1.0, 2**70, 1.0]]}]}, "out of range"),
    ({"stream": "0" * 32, "records": [{"seq": 1, "version": 1, "op": "metrics",
                                       "points": [["k", 1.0, 1, 2**70]]}]}, "out of range"),
    ({"stream": "0" * 32, "records": [{"seq": 1, "version": 1, "op": "heartbeat",
                                       "at": 10**30}]}, "out of range"),
])
def test_malformed_batches_are_422_and_apply_nothing(server, body, problem):
    answer = server.post("/api/v1/records", "writer", json=body)
    assert answer.status_code == 422, answer.text
    assert problem in answer.json()["error"]["message"]


def test_bodies_over_the_limits_are_413(server):
    records = [metrics(i + 1, 1.0, i) for i in range(MAX_RECORDS_PER_BATCH + 1)]
    many = send(server, new_stream(), records)
    assert many.status_code == 413 and str(MAX_RECORDS_PER_BATCH) in many.text
    huge = server.post("/api/v1/records", "writer", data=b" " * (MAX_JSON_BODY + 1),
                       headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    assert server.post("/api/v1/records", "writer", data=b"{not json").status_code == 422
    deep = b"[" * 10_000 + b"]" * 10_000
    assert server.post("/api/v1/records", "writer", data=deep).status_code == 422


# -- OpenAPI --------------------------------------------------------------------------------

def test_openapi_document_is_valid_and_names_every_route(server):
    from openapi_spec_validator import validate

    document = server.get("/api/openapi.json", "reader").json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    served = {(method.upper(), path) for path, item in document["paths"].items()
              for method in item}
    assert served == {(route.method, route.path) for route in ROUTES}
    json.dumps(document)


def test_a_conflicting_record_is_a_warning_and_the_rest_is_applied(server):
    stream = new_stream()
    start = start_record()
    start["run"]["env_digest"] = "sha256:" + "1" * 64  # an environment the server never got
    answer = send(server, stream, [
        start, {"seq": 2, "version": 1, "op": "params", "params": {"C": "0.5"}},
        {"seq": 3, "version": 1, "op": "params", "params": {"C": "0.9"}},
        metrics(4, 0.3, 0)])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["applied_seq"] == 4
    [warning] = body["warnings"]
    assert warning.startswith("seq 3 (params)") and "'0.5'" in warning
    assert read_run(server, body["run_id"])["history"] == [0.3]


@pytest.mark.parametrize("words", [["server"], ["server", "init"], ["server", "token"],
                                   ["server", "token", "create"], ["server", "token", "list"],
                                   ["server", "token", "revoke"], ["server", "start"]])
def test_every_server_command_has_help(words, capsys):
    from jupyter_mlops.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    assert len(capsys.readouterr().out) > 200


def test_home_may_follow_the_subcommand(server):
    listing = mlops(server.home, "token", "list").stdout
    import subprocess
    import sys

    after = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "server", "token",
                            "list", "--home", str(server.home)], capture_output=True,
                           text=True, timeout=120)
    assert after.returncode == 0 and after.stdout.splitlines()[:6] == listing.splitlines()[:6]


def test_an_expired_token_is_401_and_use_is_noted(server):
    import time

    from jupyter_mlops.teamserver.home import ServerHome

    with ServerHome(server.home).open_store() as store:
        _, expired = store.tokens.create("late", ["reader"], expires_days=1,
                                         now=time.time() - 2 * 86400)
        fresh, secret = store.tokens.create("early", ["reader"], expires_days=1)
    assert requests.get(server.url + "/api/v1/whoami",
                        headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    who = requests.get(server.url + "/api/v1/whoami",
                       headers={"Authorization": f"Bearer {secret}"}).json()
    assert who["user"] == "early" and who["expires_at"] == pytest.approx(fresh.expires_at)
    with ServerHome(server.home).open_store() as store:
        assert store.tokens.get(fresh.id).last_used_at is not None


def test_the_app_serves_exactly_the_route_table(tmp_path):
    """The sweeps above walk ROUTES; the application must hold no rule beside them."""
    from jupyter_mlops.artifacts import ArtifactStore
    from jupyter_mlops.store import Store
    from jupyter_mlops.teamserver.app import TeamServer, make_app

    with Store(tmp_path / "t.db", create=True) as store:
        app = make_app(TeamServer(store, ArtifactStore(tmp_path / "a"), frozenset()))
        patterns = set()
        for rule in app.default_router.rules:
            for inner in getattr(rule.target, "rules", [rule]):
                patterns.add(inner.matcher.regex.pattern.rstrip("$"))
                assert set(inner.target_kwargs["methods"]) <= set(METHODS)
    assert patterns == {route.pattern for route in ROUTES}


# -- governance ---------------------------------------------------------------------------

def register(server, name: str) -> int:
    data = f"model {name}".encode()
    put_blob(server, data)
    answer = send(server, new_stream(), [
        start_record(), {"seq": 2, "version": 1, "op": "model", "name": name,
                         "digest": digest_of(data), "size": len(data), "flavor": "sklearn",
                         "signature": None, "profile": None}])
    assert answer.status_code == 200, answer.text
    return answer.json()["models"][0]["version"]


def test_a_release_is_requested_by_one_token_and_approved_by_another(server):
    from jupyter_mlops.store import codec
    from jupyter_mlops.teamserver.home import ServerHome

    version = register(server, "gov")
    body = {"model": f"gov:{version}", "alias": "production", "reason": "better recall"}
    assert server.post("/api/v1/releases", "reader", json=body).status_code == 403
    made = server.post("/api/v1/releases", "reviewer", json=body)
    assert made.status_code == 200, made.text
    request = codec.decode(made.json()["request"])
    assert request.requester == USERS["reviewer"] and request.status == "pending"
    approve = f"/api/v1/releases/{request.id}/approve"
    own = server.post(approve, "reviewer", json={"reason": "looks fine"})
    assert own.status_code == 403 and "four eyes" in own.json()["error"]["message"]
    assert server.post(approve, "writer", json={"reason": "x"}).status_code == 403
    assert server.post(approve, "admin", json={"reason": 5}).status_code == 422
    done = server.post(approve, "admin", json={"reason": "checked the evidence"})
    assert done.status_code == 200, done.text
    decided = codec.decode(done.json()["request"])
    assert decided.status == "approved" and decided.decided_by == USERS["admin"]
    again = server.post(approve, "admin", json={"reason": "again"})
    assert again.status_code == 409
    with ServerHome(server.home).open_store() as store:
        assert store.releases.alias_version("gov", "production") == version
        actors = {entry.actor for entry in store.audit.entries(subject=f"gov:{version}")}
        assert store.audit.verify().ok
    assert {USERS["reviewer"], USERS["admin"]} <= actors


def test_a_rejection_and_bad_request_ids(server):
    from jupyter_mlops.store import codec

    version = register(server, "gov-reject")
    made = server.post("/api/v1/releases", "writer",
                       json={"model": f"gov-reject:{version}", "alias": "production",
                             "reason": "try"})
    request = codec.decode(made.json()["request"])
    rejected = server.post(f"/api/v1/releases/{request.id}/reject", "reviewer",
                           json={"reason": "no"})
    assert codec.decode(rejected.json()["request"]).status == "rejected"
    for bad in ("abc", "99999999999999999999999", "-1", "%3Cscript%3E"):
        answer = server.post(f"/api/v1/releases/{bad}/approve", "admin", json={"reason": "x"})
        assert answer.status_code == 422, (bad, answer.text)
    assert server.post("/api/v1/releases/424242/approve", "admin",
                       json={"reason": "x"}).status_code == 404


def test_an_unprotected_alias_moves_by_token_a_protected_one_does_not(server):
    from jupyter_mlops.store import codec
    from jupyter_mlops.teamserver.home import ServerHome

    version = register(server, "gov-alias")
    body = {"model": f"gov-alias:{version}", "alias": "staging", "reason": "try it"}
    assert server.post("/api/v1/aliases", "reader", json=body).status_code == 403
    moved = server.post("/api/v1/aliases", "writer", json=body)
    assert moved.status_code == 200, moved.text
    assert codec.decode(moved.json()["version"]).version == version
    protected = server.post("/api/v1/aliases", "admin", json={**body, "alias": "production"})
    assert protected.status_code == 403 and "protected" in protected.text
    bad = server.post("/api/v1/aliases", "writer", json={**body, "alias": "<script>"})
    assert bad.status_code == 422
    with ServerHome(server.home).open_store() as store:
        assert store.releases.alias_version("gov-alias", "staging") == version
        [entry] = [e for e in store.audit.entries(subject=f"gov-alias:{version}")
                   if "alias" in e.action]
        assert entry.actor == USERS["writer"]


def test_a_runner_ships_a_prediction_batch_into_the_servers_log(server):
    import io

    import pandas as pd

    from jupyter_mlops.teamserver.home import ServerHome

    frame = pd.DataFrame({"request_id": ["a", "b"], "at": [1.7e9, 1.7e9 + 1],
                          "version": [1, 1], "latency_ms": [1.0, 2.0],
                          "status": ["ok", "ok"], "error": ["", ""], "output": [0.1, 0.9],
                          "input.x": [1.0, 2.0]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    put_blob(server, data, "runner")
    record = {"seq": 2, "version": 1, "op": "predictions", "name": "scored",
              "digest": digest_of(data), "rows": 2}
    stream = new_stream()
    refused = send(server, stream, [start_record(), record], "writer")
    assert refused.status_code == 403 and "predictions" in refused.json()["error"]["message"]
    wrong_rows = send(server, stream, [start_record(), {**record, "rows": 3}], "runner")
    assert wrong_rows.status_code == 422 and "holds 2 rows" in wrong_rows.text
    bogus = b"not parquet at all"
    put_blob(server, bogus, "runner")
    not_parquet = send(server, stream, [start_record(), {**record, "digest": digest_of(bogus)}],
                       "runner")
    assert not_parquet.status_code == 422 and "not a Parquet table" in not_parquet.text
    done = send(server, stream, [start_record(), record], "runner")
    assert done.status_code == 200, done.text
    with ServerHome(server.home).open_store() as store:
        [batch] = store.predictions.batches("scored")
    assert batch.rows == 2 and batch.version == 1
    assert (server.home / batch.path).is_file()
    again = send(server, stream, [start_record(), record], "runner")
    assert again.json()["applied_seq"] == 2
    with ServerHome(server.home).open_store() as store:
        assert len(store.predictions.batches("scored")) == 1  # a retry logs nothing more
