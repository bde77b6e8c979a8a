"""Token sign-in for the dashboard beside a team server (`dashboard.team`), on a real
server home and its SQLite database, with a clock the tests move."""

from __future__ import annotations

import pytest

from jupyter_mlops.dashboard.team import TeamServerSide, TokenAuthenticator
from jupyter_mlops.teamserver.home import ServerHome


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def side(tmp_path):
    home = ServerHome.init(tmp_path / "home", f"sqlite:///{tmp_path}/team.db",
                           str(tmp_path / "blobs"))
    server = TeamServerSide.open(home)
    yield server
    server.close()


def test_a_token_signs_in_as_its_user_with_its_roles(side) -> None:
    _, secret = side.store.tokens.create("ana", ["reviewer"])
    auth = TokenAuthenticator(side)
    result = auth.sign_in(secret, "127.0.0.1")
    assert result.ok and auth.user_for(result.session_id) == "ana"
    token = auth.token_for(result.session_id)
    assert token is not None and token.roles == ("reviewer",)
    assert auth.sign_in_form({"token": f"  {secret}\n"}.get, "127.0.0.1").ok  # pasted


def test_an_expired_token_ends_its_session(side) -> None:
    clock = Clock()
    _, secret = side.store.tokens.create("ana", ["reviewer"], expires_days=1, now=clock())
    auth = TokenAuthenticator(side, clock=clock)
    session = auth.sign_in(secret, "127.0.0.1").session_id
    assert auth.user_for(session) == "ana"
    clock.now += 2 * 86400
    assert auth.user_for(session) is None
    assert len(auth.sessions) == 0
    assert not auth.sign_in(secret, "127.0.0.1").ok


def test_twenty_wrong_tokens_lock_the_address_even_for_a_right_one(side) -> None:
    _, secret = side.store.tokens.create("ana", ["reader"])
    auth = TokenAuthenticator(side, clock=Clock())
    for attempt in range(20):
        assert not auth.sign_in(f"mlops_wrong{attempt}", "192.0.2.7").ok
    locked = auth.sign_in(secret, "192.0.2.7")
    assert not locked.ok and locked.locked_until is not None
    assert auth.sign_in(secret, "192.0.2.8").ok  # another address is not locked
