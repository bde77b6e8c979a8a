"""Team mode, client side, against a real `mlops server` process (tests/team.py): a
notebook recorded through the server, the server down mid-run, `mlops login`/`status`/
`sync`, a client killed with -9 mid-run, refused batches, verified downloads."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from jupyter_mlops.cli.main import main
from jupyter_mlops.errors import IntegrityError, NotFound
from jupyter_mlops.hashing import digest_bytes
from jupyter_mlops.project import find_project
from jupyter_mlops.remote import credentials
from jupyter_mlops.remote.client import Client
from jupyter_mlops.remote.queue import TeamServerWarning
from jupyter_mlops.remote.spool import Spool
from jupyter_mlops.store import Store
from jupyter_mlops.tracking import Tracker

from .team import USERS, TeamServer, mlops, team_server


@pytest.fixture(scope="module")
def server(request, tmp_path_factory) -> TeamServer:
    return team_server(request, tmp_path_factory)


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("MLOPS_TOKEN", raising=False)
    monkeypatch.delenv("MLOPS_URL", raising=False)
    return home


@pytest.fixture
def team(server: TeamServer, project, config_home, monkeypatch) -> TeamServer:
    """`project` in team mode: MLOPS_URL names the server, MLOPS_TOKEN is a writer's."""
    monkeypatch.setenv("MLOPS_URL", server.url)
    monkeypatch.setenv("MLOPS_TOKEN", server.tokens["writer"])
    return server


@pytest.fixture(scope="module")
def pg_server(request, tmp_path_factory) -> TeamServer:
    return team_server(request, tmp_path_factory, db="postgresql")


def server_store(server: TeamServer) -> Store:
    """The server's own database, opened beside it (what was really recorded)."""
    return Store(server.db_url if server.db_url.startswith("postgresql") else
                 server.folder / "team.db")


def with_notebook_source(project, monkeypatch) -> None:
    """Give runs a notebook to snapshot at their end, whatever runs pytest (`pytest` or
    `python -m pytest`, whose __main__.py would otherwise be the run's source)."""
    notebook = project.root / "analysis.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                    "nbformat_minor": 5}))
    monkeypatch.setenv("MLOPS_NOTEBOOK_PATH", str(notebook))


def magic(shell, line: str):
    return shell.run_line_magic("mlops", line)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_notebook_run_is_recorded_through_the_server(db, request, config_home, monkeypatch,
                                                       ipython, tracker, project) -> None:
    team = request.getfixturevalue("server" if db == "sqlite" else "pg_server")
    monkeypatch.setenv("MLOPS_URL", team.url)
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["writer"])
    with_notebook_source(project, monkeypatch)
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.to_csv(project.root / "train.csv", index=False)
    (project.root / "reports").mkdir()
    (project.root / "reports" / "confusion.png").write_bytes(b"\x89PNG fake image bytes")
    ipython.user_ns.update(X=X, y=y)
    magic(ipython, "start --name baseline --tag team=churn")
    run_id = tracker.active_run.id
    magic(ipython, "data train.csv")
    magic(ipython, "param C=0.5 max_iter=200")
    ipython.user_ns["clf"] = LogisticRegression(C=0.5, max_iter=200).fit(X, y)
    ipython.user_ns["acc"] = ipython.user_ns["clf"].score(X, y)
    magic(ipython, "log acc")
    for step in range(1, 301):
        magic(ipython, f"log loss={1 / step} --step {step}")
    magic(ipython, "artifact reports/confusion.png")
    magic(ipython, "model clf --name churn --example X")
    magic(ipython, "end")
    with Store(project.db_path) as local:
        assert local.runs.search() == []  # nothing went into the project's own store
    with server_store(team) as store:
        run = store.runs.get(run_id)
        assert run.status == "finished" and run.name == "baseline"
        assert run.user == USERS["writer"]  # the server's, not this machine's
        assert run.params == {"C": "0.5", "max_iter": "200"} and run.tags == {"team": "churn"}
        assert run.metrics["acc"] == pytest.approx(ipython.user_ns["acc"])
        steps = [p.step for p in store.runs.metric_history(run_id, "loss")]
        assert steps == list(range(1, 301))  # each once, in order
        names = {a.name for a in store.artifacts.for_run(run_id)}
        assert {"reports/confusion.png", "models/churn-v1.skops"} <= names
        assert any(name.startswith("source/") for name in names)  # the snapshot at end
        version = store.models.resolve("churn:1")
        assert version.run_id == run_id
        assert [d.source for d in store.datasets.for_run(run_id)] == ["train.csv"]
    assert tracker.get_run(run_id).status == "finished"  # read through the server
    magic(ipython, f"show {run_id}")
    magic(ipython, "runs")
    assert [r.id for r in tracker.search_runs("params.C = '0.5'")] == [run_id]
    model = tracker.load_model("churn:1")  # downloaded, digest checked
    assert model.score(X, y) == pytest.approx(ipython.user_ns["acc"])
    with Client(team.url, team.tokens["reader"]) as client:
        out = io.BytesIO()
        client.get_blob(version.digest, out)
        assert digest_bytes(out.getvalue()) == version.digest


def test_the_server_down_mid_run_spools_tells_once_and_sync_sends_each_record_once(
        team, project, capsys) -> None:
    (project.home / "config.toml").write_text("[store]\nack_timeout_seconds = 1\n")
    tracker = Tracker(find_project())
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = tracker.start_run("outage")
            for step in range(1, 101):
                run.log_metric("loss", 1 / step, step)
            assert tracker._remote[1].flush(timeout=10)
            team.stop()
            for step in range(101, 2101):
                run.log_metric("loss", 1 / step, step)
                if step % 500 == 0:
                    tracker._remote[1].flush()
            run.log_params({"lr": 0.1})
            (project.root / "model.txt").write_text("weights")
            run.log_artifact(project.root / "model.txt")  # staged in the spool
            run.end()
        told = [str(w.message) for w in caught if issubclass(w.category, TeamServerWarning)]
        assert sum("until the team server takes them" in m for m in told) == 1, told
        assert any("has not taken" in m and "mlops sync" in m for m in told), told
    finally:
        tracker.close()
        team.start()
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert f"user: {USERS['writer']} (roles: writer)" in status
    assert f"records of run {run.id}" in status
    assert main(["sync"]) == 0
    assert f"of run {run.id}" in capsys.readouterr().out
    assert main(["sync"]) == 0
    assert "nothing to send" in capsys.readouterr().out
    with server_store(team) as store:
        steps = [p.step for p in store.runs.metric_history(run.id, "loss")]
        assert steps == list(range(1, 2101))  # every record exactly once
        ended = store.runs.get(run.id)
        assert ended.status == "finished" and ended.params == {"lr": "0.1"}
        assert "model.txt" in {a.name for a in store.artifacts.for_run(run.id)}
    assert not any(Spool.for_project(project).blobs.iterdir())


def test_login_status_logout(server, config_home, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("mlops_wrong_token_wrong_token_wrong_token_xx\n"))
    assert main(["login", server.url, "--token-stdin"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mlops: error:" in err
    assert not credentials.credentials_path().exists()
    monkeypatch.setattr("sys.stdin", io.StringIO(server.tokens["reviewer"] + "\n"))
    assert main(["login", server.url + "/", "--token-stdin"]) == 0
    assert f"logged in to {server.url} as {USERS['reviewer']} (roles: reviewer" in \
        capsys.readouterr().out
    assert credentials.token_for(server.url) == server.tokens["reviewer"]
    assert main(["logout", server.url]) == 0
    assert f"logged out of {server.url}" in capsys.readouterr().out
    assert main(["logout", server.url]) == 0
    assert "no token stored" in capsys.readouterr().out
    expiring = mlops(server.home, "token", "create", "eve", "--role", "reader", "--expires",
                     "3").stdout.splitlines()[0].strip()
    monkeypatch.setattr("sys.stdin", io.StringIO(expiring + "\n"))
    assert main(["login", server.url, "--token-stdin"]) == 0
    assert "as eve (roles: reader, token expires 20" in capsys.readouterr().out


def test_status_names_user_roles_and_nothing_pending(team, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["admin"])
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"server: {team.url}" in out and f"user: {USERS['admin']} (roles: admin)" in out
    assert "pending: nothing" in out


def test_a_run_through_the_server_keeps_its_environment(team, project) -> None:
    from jupyter_mlops import capture

    tracker = Tracker(find_project())
    try:
        with tracker.start_run("with-env") as run:
            pass
    finally:
        tracker.close()
    here = capture.environment()
    with server_store(team) as store:
        assert store.runs.get(run.id).env_digest == here.digest
        assert store.environments.get(here.digest).packages == here.packages


def test_consecutive_log_metric_calls_travel_as_few_records_each_point_once(team, project
                                                                          ) -> None:
    tracker = Tracker(find_project())
    try:
        with tracker.start_run("many-points") as run:
            for i in range(5000):
                run.log_metric("loss", 1.0 / (i + 1), step=i)
            run.log_param("after", "points")
            run.log_metric("loss", 0.0, step=5000)
        assert run.unacknowledged == 0
    finally:
        tracker.close()
    with server_store(team) as store:
        history = store.runs.metric_history(run.id, "loss")
        assert [p.step for p in history] == list(range(5001))
        assert store.runs.get(run.id).params == {"after": "points"}
        applied = store.streams.get(run.uuid).applied_seq
    assert applied < 1000  # 5,003 calls, far fewer records: points joined while waiting


def test_a_runs_own_notes_reach_the_server_without_a_warning(team, project) -> None:
    from jupyter_mlops import capture

    tracker = Tracker(find_project())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "could not note ..." would fail the test
            with tracker.start_run("console", source=capture.Source("interactive", None)
                                   ) as run:
                pass
    finally:
        tracker.close()
    with server_store(team) as store:
        reason = store.runs.get(run.id).tags["mlops.not_reproducible"]
    assert reason.startswith("an interactive session has no notebook or script file")


def test_a_reader_cannot_start_a_run(team, project, monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["reader"])
    tracker = Tracker(find_project())
    try:
        with pytest.raises(Exception, match="permission|record") as caught:
            tracker.start_run("nope")
        assert "\n" not in str(caught.value)
    finally:
        tracker.close()


def test_a_refused_batch_is_set_aside_and_the_user_told(team, project, monkeypatch) -> None:
    with_notebook_source(project, monkeypatch)
    tracker = Tracker(find_project())
    try:
        run = tracker.start_run("refused")
        recorder = run._recorder
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            recorder._glue("params", params={"k": "<script>alert(1)</script>" * 1})
            recorder._glue("bogus", evil="../../etc/passwd")
            assert not recorder.queue.wait_acked(recorder.stream, recorder.seq, 5)
        told = [str(w.message) for w in caught if issubclass(w.category, TeamServerWarning)]
        assert len(told) == 1 and "refused 2 records" in told[0], told
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.end()  # its records follow a refused batch: set aside too, no wait
        told = [str(w.message) for w in caught if issubclass(w.category, TeamServerWarning)]
        assert len(told) == 1 and "follows a refused batch" in told[0], told
    finally:
        tracker.close()
    aside = Spool.for_project(project).rejected_path.read_text().splitlines()
    assert [r["op"] for r in json.loads(aside[-2])["records"]] == ["params", "bogus"]
    assert [r["op"] for r in json.loads(aside[-1])["records"]][-2:] == ["source", "end"]
    assert Spool.for_project(project).read() == ([], [])


def test_a_download_that_does_not_match_its_digest_is_refused(team) -> None:
    with Client(team.url, team.tokens["writer"]) as client:
        data = b"some bytes"
        digest = digest_bytes(data)
        if client.missing([digest]):
            client.put_blob(digest, io.BytesIO(data), len(data))
        with pytest.raises(NotFound):
            client.get_blob(digest_bytes(b"never uploaded"), io.BytesIO())
        with pytest.raises(IntegrityError):
            client.put_blob(digest_bytes(b"other"), io.BytesIO(data), len(data))


VICTIM = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from jupyter_mlops.tracking import Tracker
    tracker = Tracker()
    run = tracker.start_run("victim")
    queue = tracker._remote[1]
    for step in range(1, 201):
        run.log_metric("loss", 1 / step, step)
    queue.flush(timeout=30)
    print("SENT", run.id, flush=True)
    while not Path("go").exists():
        time.sleep(0.05)
    step = 200
    while True:
        step += 1
        run.log_metric("loss", 1 / step, step)
        if step % 50 == 0:
            queue.flush()
        if step == 1200:
            print("SPOOLED", flush=True)
""")


def test_a_client_killed_mid_run_leaves_a_spool_sync_sends_once(team, project, capsys
                                                                 ) -> None:
    script = project.root / "victim.py"
    script.write_text(VICTIM)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=os.environ.copy())
    try:
        sent = proc.stdout.readline().split()
        assert sent[:1] == ["SENT"], sent
        run_id = int(sent[1])
        team.stop()
        (project.root / "go").touch()
        assert proc.stdout.readline().strip() == "SPOOLED"
        time.sleep(0.3)  # killed while it keeps logging and spooling
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if team.proc is None or team.proc.poll() is not None:
            team.start()
    spool = Spool.for_project(project)
    batches, _ = spool.read()
    records = [r for b in batches for r in b.records]
    assert len({r["seq"] for r in records}) == len(records)  # each record once
    assert sum(len(r["points"]) for r in records) >= 1000  # a record carries many points
    assert main(["sync"]) in (0, 1)  # 1 only if a half-written line was set aside
    assert main(["sync"]) == 0
    capsys.readouterr()
    with server_store(team) as store:
        steps = [p.step for p in store.runs.metric_history(run_id, "loss")]
    assert steps == list(range(1, len(steps) + 1))  # a prefix, each step once
    assert len(steps) >= 1200


def test_a_large_file_streams_through_in_bounded_memory(team, project) -> None:
    import tracemalloc

    big = project.root / "big.bin"
    with open(big, "wb") as out:
        for n in range(64):
            out.write(bytes([n]) * (1 << 20))
    tracker = Tracker(find_project())
    try:
        run = tracker.start_run("big")
        tracemalloc.start()
        [link] = run.log_artifact(big)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 8 << 20, f"{peak} bytes held to upload 64 MiB"
        run.end()
    finally:
        tracker.close()
    with server_store(team) as store:
        [stored] = [a for a in store.artifacts.for_run(run.id) if a.name == "big.bin"]
    assert stored.digest == link.digest and stored.size == 64 << 20


def test_starting_a_run_with_the_server_down_is_one_line(project, config_home, ipython,
                                                         monkeypatch) -> None:
    from IPython.core.error import UsageError

    from .test_remote import closed_port

    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLOPS_URL", url)
    monkeypatch.setenv("MLOPS_TOKEN", "mlops_x")
    with pytest.raises(UsageError, match=f"team server {url} did not answer") as caught:
        magic(ipython, "start")
    assert "\n" not in str(caught.value)
    monkeypatch.setenv("MLOPS_URL", "http://evil.example.org/<script>")
    with pytest.raises(UsageError, match="MLOPS_URL: .*plain http"):
        magic(ipython, "start")


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_the_server_restarted_mid_run_the_queue_resends_by_itself(db, request, project,
                                                                  config_home, monkeypatch
                                                                  ) -> None:
    team = request.getfixturevalue("server" if db == "sqlite" else "pg_server")
    monkeypatch.setenv("MLOPS_URL", team.url)
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["runner"])
    tracker = Tracker(find_project())
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = tracker.start_run("restart")
            run.log_params({"lr": 0.01})
            for step in range(1, 501):
                run.log_metric("loss", 1 / step, step)
            team.kill()  # no clean stop
            for step in range(501, 1001):
                run.log_metric("loss", 1 / step, step)
            tracker._remote[1].flush()
            team.start()
            run.end()  # waits for the queue to send the spool to the server again
        told = [str(w.message) for w in caught if issubclass(w.category, TeamServerWarning)]
        assert sum("until the team server takes them" in m for m in told) == 1, told
        assert any("answers again" in m for m in told), told
        assert run.unacknowledged == 0
    finally:
        tracker.close()
    assert Spool.for_project(project).read() == ([], [])
    with server_store(team) as store:
        recorded = store.runs.get(run.id)
        steps = [p.step for p in store.runs.metric_history(run.id, "loss")]
    assert recorded.status == "finished" and recorded.user == USERS["runner"]
    assert recorded.params == {"lr": "0.01"}
    assert steps == list(range(1, 1001))


def test_records_queued_at_interpreter_exit_are_sent(team, project) -> None:
    script = project.root / "leaves.py"
    script.write_text(textwrap.dedent("""
        import jupyter_mlops as mlops
        run = mlops.start_run("left-open")
        print(run.id, flush=True)
        for step in range(1, 3001):
            run.log_metric("loss", 1 / step, step)
    """))  # no end: atexit ends the run and sends what is queued
    done = subprocess.run([sys.executable, str(script)], cwd=project.root, capture_output=True,
                          text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    run_id = int(done.stdout.split()[0])
    with server_store(team) as store:
        assert store.runs.get(run_id).status == "finished"
        steps = [p.step for p in store.runs.metric_history(run_id, "loss")]
    assert steps == list(range(1, 3001))
    assert Spool.for_project(project).read() == ([], [])


def test_end_says_how_many_records_wait_when_the_server_is_gone(team, ipython, tracker,
                                                                project, capsys) -> None:
    (project.home / "config.toml").write_text("[store]\nack_timeout_seconds = 0.5\n")
    tracker.switch_project(find_project())
    magic(ipython, "start")
    magic(ipython, "log loss=1 --step 1")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # told once: tested elsewhere
            team.stop()
            magic(ipython, "log loss=2 --step 2")
            magic(ipython, "end")
        out = capsys.readouterr().out
        assert "records wait in .mlops/spool/ for the team server (`mlops sync` sends them)" \
            in out
    finally:
        team.start()
    assert main(["sync"]) == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker.close()  # its queue finds the spool sent
    assert [str(w.message) for w in caught] == [f"jupyter-mlops: team server {team.url} "
                                                "answers again"]


def test_a_runner_logs_a_model_and_its_predictions_through_the_server(team, project,
                                                                      monkeypatch) -> None:
    from jupyter_mlops.teamserver.home import ServerHome

    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["runner"])
    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = LogisticRegression(max_iter=300).fit(X, y)
    tracker = Tracker(find_project())
    try:
        with tracker.start_run("scoring") as run:
            version = run.log_model(clf, "irises", input_example=X)
            assert version.version is not None  # waited for the server's number
            assert run.log_predictions(version.ref, X.head(25), clf.predict(X.head(25))) == 25
    finally:
        tracker.close()
    with ServerHome(team.home).open_store() as store:
        [batch] = store.predictions.batches("irises")
        assert store.models.resolve(version.ref).run_id == run.id
    assert batch.rows == 25 and batch.version == version.version


def run_predictions_ids(team, name: str) -> list[str]:
    """The request ids of the server's prediction log of `name`, in order."""
    from jupyter_mlops.monitoring.predlog import PredictionLog
    from jupyter_mlops.teamserver.governance import server_project

    with server_store(team) as store:
        frame = PredictionLog(server_project(team.home, team.folder / "artifacts")).read(
            store, name)
    return [str(r) for r in frame["request_id"]]


def test_monitor_report_and_check_come_from_the_server(team, project, capsys,
                                                      monkeypatch) -> None:
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["runner"])
    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = LogisticRegression(max_iter=300).fit(X, y)
    tracker = Tracker(find_project())
    try:
        with tracker.start_run("scoring-for-monitor") as run:
            version = run.log_model(clf, "monitored-irises", input_example=X)
            run.log_predictions(version.ref, X.head(40), clf.predict(X.head(40)))
    finally:
        tracker.close()
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["reader"])
    assert main(["monitor", "report", "monitored-irises"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("monitored-irises: 40 predictions") and "version 1" in out
    assert main(["monitor", "report", "monitored-irises", "--json", "--last", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 10
    assert main(["monitor", "check", "monitored-irises"]) in (0, 1)
    assert "Traceback" not in capsys.readouterr().err
    logged = run_predictions_ids(team, "monitored-irises")
    labels = project.root / "labels.csv"
    labels.write_text("request_id,label\n" + "".join(f"{r},{int(t)}\n" for r, t in
                                                     zip(logged[:30], y.head(30), strict=True)))
    assert main(["monitor", "labels", "monitored-irises", str(labels)]) == 1  # a reader
    assert "permission" in capsys.readouterr().err
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["runner"])
    assert main(["monitor", "labels", "monitored-irises", str(labels)]) == 0
    assert "30 labels added for monitored-irises" in capsys.readouterr().out
    bad = project.root / "bad.csv"
    bad.write_text(f"request_id,label\n{logged[0]},1\n{logged[1]},\n")
    assert main(["monitor", "labels", "monitored-irises", str(bad)]) == 1
    assert "line 3" in capsys.readouterr().err  # named, and nothing of it stored
    assert main(["monitor", "report", "monitored-irises", "--json"]) == 0
    [version] = json.loads(capsys.readouterr().out)["versions"]
    assert version["labelled"] == 30 and version["quality"]
    for bad in ("<script>", "../x"):
        assert main(["monitor", "report", bad]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("mlops: error: "), err
    for body in ({"model": "monitored-irises", "last": 0}, {"model": 5},
                 {"model": "monitored-irises", "since": "yesterday"}, []):
        answer = requests.post(f"{team.url}/api/v1/monitor/report", json=body, timeout=10,
                               headers={"Authorization": f"Bearer {team.tokens['reader']}"})
        assert answer.status_code == 422, (body, answer.text)
    for body in ({"model": "monitored-irises", "request_ids": ["a"], "labels": []},
                 {"model": "monitored-irises", "request_ids": [{"x": 1}], "labels": [1]},
                 {"model": "monitored-irises", "request_ids": "a", "labels": "b"},
                 {"model": "../x", "request_ids": [], "labels": []},
                 {"model": "monitored-irises", "request_ids": ["a"], "labels": [1],
                  "file_kind": "<script>"}):
        answer = requests.post(f"{team.url}/api/v1/monitor/labels", json=body, timeout=10,
                               headers={"Authorization": f"Bearer {team.tokens['runner']}"})
        assert answer.status_code == 422, (body, answer.text)


def test_a_token_revoked_mid_run_keeps_the_records_until_a_new_login(team, project,
                                                                     config_home, capsys,
                                                                     monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_TOKEN")
    created = mlops(team.home, "token", "create", "dora", "--role", "writer").stdout
    first, token_id = created.splitlines()[0].strip(), created.splitlines()[1].split()[1]
    credentials.store_token(team.url, first)
    (project.home / "config.toml").write_text("[store]\nack_timeout_seconds = 0.5\n")
    tracker = Tracker(find_project())
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = tracker.start_run("revoked")
            run.log_metric("loss", 1.0, 1)
            assert tracker._remote[1].flush(timeout=10)
            mlops(team.home, "token", "revoke", token_id)
            for step in range(2, 102):
                run.log_metric("loss", 1 / step, step)
            assert not tracker._remote[1].flush()
            run.end()
        told = [str(w.message) for w in caught if issubclass(w.category, TeamServerWarning)]
        assert len(told) == 2 and "revoked" in told[0] and "mlops sync" in told[1], told
    finally:
        tracker.close()
    assert main(["sync"]) == 1  # still refused: kept, not set aside
    assert "mlops: error:" in capsys.readouterr().err
    assert len(Spool.for_project(project).read()[0]) >= 1
    second = mlops(team.home, "token", "create", "dora", "--role", "writer").stdout
    monkeypatch.setattr("sys.stdin", io.StringIO(second.splitlines()[0]))
    assert main(["login", team.url, "--token-stdin"]) == 0
    assert main(["sync"]) == 0
    with server_store(team) as store:
        steps = [p.step for p in store.runs.metric_history(run.id, "loss")]
        assert store.runs.get(run.id).status == "finished"
    assert steps == list(range(1, 102))
