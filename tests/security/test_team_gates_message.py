"""`POST /api/v1/gates/run` on a server whose rules declare no gates names the server's
rules file (registry.toml in its home), not the client project's .mlops/config.toml,
which the server never reads."""

from __future__ import annotations

import pytest

from ..team import record_run, team_server


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite")


def test_no_gates_names_the_servers_rules_file(team):
    record_run(team, "m", model="churn")
    answer = team.post("/api/v1/gates/run", "writer", json={"model": "churn:1"})
    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]["message"]
    assert "registry.toml in the team server's home" in message
    assert ".mlops/config.toml" not in message
