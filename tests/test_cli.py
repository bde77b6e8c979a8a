"""The `mlops` command, called as a user would (a subprocess) or through `main()`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jupyter_mlops.cli.main import build_parser, main


def mlops(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_init_creates_a_project(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_HOME")
    result = mlops("init", cwd=tmp_path)
    assert result.returncode == 0 and ".mlops" in result.stdout
    assert (tmp_path / ".mlops" / "mlops.db").exists()
    assert mlops("init", cwd=tmp_path).returncode == 0  # idempotent


def test_commands_outside_a_project_say_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_HOME")
    result = mlops("runs", "ls", cwd=tmp_path)
    assert result.returncode == 1
    assert "mlops init" in result.stderr and "Traceback" not in result.stderr


def test_runs_ls_show_compare(store_with_runs, project, capsys) -> None:
    assert main(["runs", "ls"]) == 0
    table = capsys.readouterr().out
    assert "run-2" in table and "acc" in table and table.index("run-2") < table.index("run-0")
    assert main(["runs", "ls", "--json", "--filter", "metrics.acc > 0.85", "--limit", "1"]) == 0
    [only] = json.loads(capsys.readouterr().out)
    assert only["name"] == "run-2" and only["status"] == "failed"
    assert main(["runs", "show", "2"]) == 0
    assert "solver" in capsys.readouterr().out
    # A limit or offset past SQLite's integer range means "all" / "none", not a traceback.
    assert main(["runs", "ls", "--limit", "9" * 20]) == 0
    assert "run-0" in capsys.readouterr().out
    assert main(["runs", "ls", "--offset", "9" * 20]) == 0
    assert "run-0" not in capsys.readouterr().out
    assert main(["runs", "show", "2", "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["run"]["params"]["C"] == "0.5" and detail["environment"]["packages"]
    assert main(["runs", "compare", "1", "2", "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    differing = {row["key"] for row in comparison["rows"] if row["differs"]}
    assert {"C", "acc", "name"} <= differing and "solver" not in differing


@pytest.mark.parametrize(("args", "message"), [
    (["runs", "ls", "--filter", "metrics.acc >> 1"], "bad filter"),
    (["runs", "show", "404"], "no run with id 404"),
    (["runs", "show", "../../etc/passwd"], "no run"),
    (["runs", "compare", "1"], "at least two"),
    # Past SQLite's integer range: no such record, not an OverflowError traceback.
    (["runs", "show", "9" * 20], f"no run with id {'9' * 20}"),
    (["runs", "compare", "1", "9" * 20], "no run with id"),
    (["runs", "show", "\u00b2"], "no run '\u00b2'"),
    (["models", "show", "m:" + "9" * 20], "no model version m:"),
    (["models", "show", "m:\u00b2"], "should look like NAME"),
    (["models", "alias", "m:" + "9" * 20, "staging", "--reason", "r"], "no model version"),
])
def test_errors_are_one_line_and_exit_1(store_with_runs, project, capsys, args, message) -> None:
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.startswith("mlops: error:")


@pytest.mark.parametrize("args", [
    ["runs", "ls", "--limit", "-3"], ["runs", "ls", "--limit", "x"], ["nope"], [],
    ["pipeline", "runs", "--limit", "-5"], ["pipeline", "runs", "--limit", "0"],
    ["pipeline", "run", "p.yaml", "--jobs", "0"], ["schedule", "run", "--jobs", "-1"],
    ["monitor", "report", "m", "--last", "0"], ["audit", "ls", "--limit", "-5"],
])
def test_usage_errors_exit_2(args) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2


def test_verify_reports_corruption(tracker, project) -> None:
    path = project.root / "a.txt"
    path.write_text("artifact")
    with tracker.start_run() as run:
        [link] = run.log_artifact(path)
    ok = mlops("verify", cwd=project.root)
    assert ok.returncode == 0 and "0 bad" in ok.stdout
    stored = tracker.artifacts.path_for(link.digest)
    os.chmod(stored, 0o644)
    stored.write_text("changed")
    bad = mlops("verify", cwd=project.root)
    assert bad.returncode == 1 and f"BAD {link.digest}" in bad.stdout
    stored.unlink()
    missing = mlops("verify", cwd=project.root)
    assert missing.returncode == 1 and "missing" in missing.stdout


def test_every_command_has_help(capsys) -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert sub.description, name
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert "usage: mlops" in capsys.readouterr().out


def test_a_database_that_is_not_one_is_an_error_not_a_traceback(project, capsys) -> None:
    (project.home / "mlops.db").write_bytes(b"not a database" * 1000)
    for stale in ("mlops.db-wal", "mlops.db-shm"):
        (project.home / stale).unlink(missing_ok=True)
    assert main(["runs", "ls"]) == 1
    assert "the store's database failed: file is not a database" in capsys.readouterr().err


def test_a_port_in_use_is_one_line_naming_it(project) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = mlops("dashboard", "--dev", "--port", str(port), cwd=project.root)
    assert result.returncode == 1
    assert f"port {port} is in use on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr


def test_runs_env_prints_pinned_requirements_and_the_differences_here(
        tracker, project, capsys, monkeypatch) -> None:
    from jupyter_mlops import capture

    with tracker.start_run("with-env") as run:
        pass
    here = capture.environment()
    assert main(["runs", "env", str(run.id)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"# run {run.id} ") and here.python in lines[0]
    assert f"numpy=={here.packages['numpy']}" in lines
    assert len([line for line in lines if "==" in line]) == len(here.packages)
    assert main(["runs", "env", str(run.id), "--diff"]) == 0
    assert "is this one" in capsys.readouterr().out

    changed = dict(here.packages, numpy="0.0.1", **{"not-installed-here": "1.0"})
    del changed["pandas"]
    recorded = capture.environment_of("3.9.0", changed)
    tracker.store.environments.save(recorded)
    set_env_digest(project, run.id, recorded.digest)
    assert main(["runs", "env", str(run.id), "--diff"]) == 1
    out = capsys.readouterr().out
    assert "4 difference(s)" in out
    assert f"python: 3.9.0 in the run's environment, {here.python} here" in out
    assert f"numpy: 0.0.1 in the run's environment, {here.packages['numpy']} here" in out
    assert "not-installed-here: 1.0 in the run's environment, missing here" in out
    assert f"pandas: not in the run's environment, {here.packages['pandas']} here" in out

    set_env_digest(project, run.id, None)
    assert main(["runs", "env", str(run.id)]) == 1
    assert "no recorded environment" in capsys.readouterr().err
    assert main(["runs", "env", "999999"]) == 1
    assert "no run" in capsys.readouterr().err


def set_env_digest(project, run_id: int, digest: str | None) -> None:
    """Point a run at another recorded environment (as if recorded elsewhere)."""
    import sqlite3

    with sqlite3.connect(project.db_path) as conn:
        conn.execute("UPDATE runs SET env_digest = ? WHERE id = ?", (digest, run_id))
