"""The team server's database goes away while it runs (here: its connections are cut
and new ones refused, which is what a stopped PostgreSQL looks like to it).

Clients get a 503 in general terms, whoever they are: the store's own message names
the database's host, port, user and name, and tokens are checked in the database,
so before this fix anyone without a token was told where the database lives. The
server's log has the details, and when the database is back the server answers
again without a restart."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from ..team import record_run, team_server


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "postgresql")


def _allow_connections(team, allowed: bool) -> None:
    import psycopg

    from ..postgres import cluster

    name = urlparse(team.db_url).path.lstrip("/")
    with psycopg.connect(cluster().url(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s", (name,))


def test_a_database_gone_is_a_503_that_says_nothing_of_it_and_the_server_recovers(team):
    database = urlparse(team.db_url)
    record_run(team, "before")
    _allow_connections(team, False)
    try:
        answers = [team.get("/api/v1/whoami", None,
                            headers={"Authorization": "Bearer mlops_" + "x" * 43}),
                   team.post("/api/v1/read", "reader", json={"call": "runs.search"}),
                   team.get("/api/v1/whoami", "writer")]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            message = answer.json()["error"]["message"]
            assert "cannot use its database" in message
            for secret in (str(database.port), database.path.lstrip("/"), "postgresql"):
                assert secret not in message, message
        assert database.path.lstrip("/") in team.log_text()  # the admin sees why
    finally:
        _allow_connections(team, True)
    assert team.post("/api/v1/read", "reader", json={"call": "runs.search"}).status_code == 200
    assert record_run(team, "after")["applied_seq"] > 0
