"""The `mlops` command in a team-mode project: reads come from a real team server, and a
command that would write the store says in one line that only the server writes it."""

from __future__ import annotations

import uuid

import pytest

from jupyter_mlops.cli.main import main

from .team import team_server


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    server = team_server(request, tmp_path_factory, "sqlite")
    stream = uuid.uuid4().hex
    records = [
        {"seq": 1, "version": 1, "op": "start",
         "run": {"uuid": stream, "name": "colleague-run", "started_at": 1_700_000_000.0,
                 "source_kind": "notebook"}},
        {"seq": 2, "version": 1, "op": "metrics", "points": [["acc", 0.9, None, 1.7e9]]},
        {"seq": 3, "version": 1, "op": "end", "status": "finished", "error": None},
    ]
    answer = server.post("/api/v1/records", "writer", json={"stream": stream,
                                                             "records": records})
    assert answer.status_code == 200, answer.text
    server.run_id = answer.json()["run_id"]
    return server


@pytest.fixture
def in_team_mode(team, project, monkeypatch):
    monkeypatch.setenv("MLOPS_URL", team.url)
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["reader"])
    return team


def test_runs_ls_and_show_read_the_servers_runs(in_team_mode, capsys):
    assert main(["runs", "ls"]) == 0
    assert "colleague-run" in capsys.readouterr().out
    assert main(["runs", "show", str(in_team_mode.run_id)]) == 0
    assert "colleague-run" in capsys.readouterr().out
    assert main(["audit", "verify"]) == 0


@pytest.mark.parametrize("argv", [
    ["runs", "compare", "1", "1"], ["models", "ls"], ["audit", "ls"], ["audit", "head"],
    ["audit", "seal"], ["release", "ls"], ["release", "request", "m:1", "--to", "production",
                                             "--reason", "r"],
    ["release", "approve", "1", "--reason", "ok"], ["gates", "run", "m:1"],
    ["models", "alias", "m:1", "staging", "--reason", "r"], ["verify"], ["gc"],
    ["pipeline", "runs"], ["monitor", "report", "m"],
])
def test_every_command_answers_or_says_why_in_one_line(in_team_mode, capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code in (0, 1), (argv, code, captured)
    assert "Traceback" not in captured.err + captured.out
    if code == 1:
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("mlops: error: "), captured.err
