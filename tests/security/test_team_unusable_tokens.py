"""A revoked or expired token is refused with the reason, and does not count as a guess
against its address: a service left running with one (`mlops serve`, a CI runner
retrying its spool) used to lock every user at its address out within a minute (429
for valid tokens too), and to keep them out for as long as it ran."""

from __future__ import annotations

import time

import pytest

from jupyter_mlops.store import Store

from ..team import team_server


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite")


def _token(team, user: str, **expiry: float) -> tuple[int, str]:
    from jupyter_mlops.teamserver.home import ServerHome

    with ServerHome(team.home).open_store() as store:
        token, secret = store.tokens.create(user, ["runner"], **expiry)
    return token.id, secret


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_an_unusable_token_says_why_and_locks_nobody_out(team, state):
    if state == "revoked":
        token_id, secret = _token(team, f"svc-{state}")
        with Store(team.db_url) as store:
            store.tokens.revoke(token_id)
    else:  # made a year ago for 90 days
        _, secret = _token(team, f"svc-{state}", expires_days=90, now=time.time() - 365 * 86400)
    for _ in range(30):  # more than the 20 free wrong guesses
        answer = team.get("/api/v1/whoami", None,
                          headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 401, answer.text
    message = answer.json()["error"]["message"]
    assert state in message and f"svc-{state}" in message and secret not in message
    assert team.get("/api/v1/whoami", "reader").status_code == 200  # not 429
