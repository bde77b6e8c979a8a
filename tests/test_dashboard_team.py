"""The dashboard beside a team server (`mlops server dashboard`): a real Panel server on a
real team server's database, signed in with team tokens in Debian's chromium."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jupyter_mlops.store import codec
from jupyter_mlops.teamserver.home import ServerHome

from .helpers import running_dashboard
from .team import USERS, digest_of, record_run, team_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def beside(request, tmp_path_factory):
    """A team server with one pending release (churn:1 -> production, requested by the
    writer's token), and the dashboard started on its home, on SQLite and PostgreSQL."""
    server = team_server(request, tmp_path_factory, request.param)
    record_run(server, "trained-by-writer", metrics={"acc": 0.9}, model="churn")
    made = server.post("/api/v1/releases", "writer", json={
        "model": "churn:1", "alias": "production", "reason": "better <b>recall</b>"})
    assert made.status_code == 200, made.text
    server.release = codec.decode(made.json()["request"])
    with running_dashboard(server.folder, command=("server", "--home", str(server.home),
                                                   "dashboard")) as (port, log):
        server.dashboard = f"http://127.0.0.1:{port}"
        server.dashboard_log = log
        yield server


def sign_in(browser, base: str, token: str):
    page = browser.new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(base + "/releases")
    page.fill("input[name=token]", token)
    page.click("#login")
    return page, dialogs


def test_a_wrong_token_is_refused(beside, browser) -> None:
    page, _ = sign_in(browser, beside.dashboard, "mlops_" + "w" * 43)
    assert "That token is wrong, revoked or expired" in page.content()
    assert "churn" not in page.content()
    assert page.locator("input[name=username]").count() == 0  # a token, not a password


def test_a_reader_sees_the_release_but_cannot_approve(beside, browser) -> None:
    page, dialogs = sign_in(browser, beside.dashboard, beside.tokens["reader"])
    page.wait_for_url("**/releases")
    page.get_by_text(f"#{beside.release.id}: churn:1").wait_for()
    assert page.get_by_text(f"{USERS['reader']} (reader)").count() == 1
    assert page.get_by_text("only reviewers decide releases").count() == 1
    assert page.get_by_role("button", name="Approve").count() == 0
    assert page.get_by_text("better <b>recall</b>").count() == 1  # shown as text
    assert dialogs == []


def test_a_reviewer_token_approves_as_its_user(beside, browser) -> None:
    page, dialogs = sign_in(browser, beside.dashboard, beside.tokens["reviewer"])
    page.wait_for_url("**/releases")
    page.get_by_text(f"#{beside.release.id}: churn:1").wait_for()
    assert page.get_by_text(f"{USERS['reviewer']} (reviewer)").count() == 1
    page.get_by_placeholder("why approve or reject").fill("evidence checked")
    page.get_by_placeholder("why approve or reject").press("Tab")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("production now points at churn:1").wait_for()
    with ServerHome(beside.home).open_store() as store:  # the server's own database
        decided = store.releases.get(beside.release.id)
        assert decided.status == "approved" and decided.decided_by == USERS["reviewer"]
        assert store.releases.alias_version("churn", "production") == 1
        actors = {entry.actor for entry in store.audit.entries(subject="churn:1")}
        assert store.audit.verify().ok  # keyed with the server's audit key
    assert USERS["reviewer"] in actors
    answer = beside.post("/api/v1/read", "reader", json={
        "call": "releases.alias_version", "args": ["churn", "production"]})
    assert answer.json()["result"] == 1  # the team server sees the dashboard's approval
    assert dialogs == []


def ship_predictions(server, name: str, rows: int) -> None:
    """What `mlops serve` ships in team mode: a Parquet batch of prediction-log rows."""
    import io
    import uuid

    import pandas as pd

    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(rows)],
                          "at": [1.7e9 + i for i in range(rows)], "version": [1] * rows,
                          "latency_ms": [1.0] * rows, "status": ["ok"] * rows,
                          "error": [""] * rows, "output": [0.5] * rows,
                          "input.x": [float(i) for i in range(rows)]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    assert server.request("PUT", f"/api/v1/blobs/{digest_of(data)}", "runner",
                          data=data).status_code == 200
    stream = uuid.uuid4().hex
    records = [{"seq": 1, "version": 1, "op": "start",
                "run": {"uuid": stream, "name": "scoring", "started_at": 1.7e9,
                        "source_kind": "service"}},
               {"seq": 2, "version": 1, "op": "predictions", "name": name,
                "digest": digest_of(data), "rows": rows}]
    answer = server.post("/api/v1/records", "runner", json={"stream": stream,
                                                             "records": records})
    assert answer.status_code == 200, answer.text


def test_runs_models_audit_and_monitoring_pages_read_the_servers_database(beside,
                                                                         browser) -> None:
    page, dialogs = sign_in(browser, beside.dashboard, beside.tokens["reader"])
    page.wait_for_url("**/releases")
    page.goto(beside.dashboard + "/runs")
    page.get_by_text("trained-by-writer").first.wait_for()
    page.goto(beside.dashboard + "/models")
    page.get_by_text("churn").first.wait_for()
    page.goto(beside.dashboard + "/audit")
    page.get_by_text("hash chain intact").first.wait_for()  # the server's audit key
    ship_predictions(beside, "churn", 2)
    page.goto(beside.dashboard + "/monitoring")
    page.get_by_text("2 predictions").first.wait_for()  # the server's prediction log
    assert "Traceback" not in page.content()
    assert dialogs == []


def test_a_revoked_token_ends_its_session(beside, browser) -> None:
    with ServerHome(beside.home).open_store() as store:
        token, secret = store.tokens.create("leaver", ["reviewer"])
    page, _ = sign_in(browser, beside.dashboard, secret)
    page.wait_for_url("**/releases")
    page.get_by_text("leaver (reviewer)").wait_for()
    with ServerHome(beside.home).open_store() as store:
        store.tokens.revoke(token.id)
    page.goto(beside.dashboard + "/releases")
    page.locator("input[name=token]").wait_for()  # back at the sign-in page
    assert "leaver" not in page.content()


def test_without_a_server_home_it_says_so_in_one_line(tmp_path) -> None:
    """Nothing is started: no server home, no dashboard."""
    done = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "server", "--home",
                           str(tmp_path / "nowhere"), "dashboard"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "no server home" in done.stderr
