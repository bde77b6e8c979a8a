"""Issue 9 (attack review): the sign-in back-off can't be flushed, and sign-in
doesn't tell which user names exist.

- A flood of new user names or addresses never ends a lockout early: locked
  records are never evicted; unknown names share a bounded set of records;
  when every address record is locked, new addresses wait together.
- An unknown name costs the same password-hash work as a known one and locks
  the same way.

The rules with a clock the test moves; `Authenticator` on a real credentials
file (real scrypt). No timing assertions: the hash calls themselves are counted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from jupyter_mlops.dashboard import credentials as credentials_module
from jupyter_mlops.dashboard.authenticator import Authenticator
from jupyter_mlops.dashboard.credentials import CredentialsFile, add_user
from jupyter_mlops.dashboard.throttle import (
    PER_ADDRESS,
    PER_USER,
    BackoffPolicy,
    NameBuckets,
    Throttle,
)

POLICY = BackoffPolicy(free_failures=3, first_lockout=60, max_lockout=600, forget_after=3600)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _lock(throttle: Throttle, key: str, policy: BackoffPolicy = POLICY) -> float:
    for _ in range(policy.free_failures + 1):
        throttle.failure(key)
    until = throttle.locked_until(key)
    assert until is not None
    return until


def test_a_flood_of_new_keys_never_unlocks_a_locked_key() -> None:
    clock = Clock()
    throttle = Throttle(POLICY, clock=clock, max_keys=50)
    until = _lock(throttle, "victim")
    for n in range(1000):  # each new key once: far past the cap
        clock.now += 0.01
        throttle.failure(f"flood{n}")
        assert len(throttle) <= 50
    assert throttle.locked_until("victim") == until


def test_unlocked_keys_make_room_oldest_first() -> None:
    clock = Clock()
    throttle = Throttle(POLICY, clock=clock, max_keys=3)
    until = _lock(throttle, "locked")
    for key in ("old", "new"):
        clock.now += 1
        throttle.failure(key)
    clock.now += 1
    throttle.failure("newest")
    assert throttle.failure("new") == 2  # kept: the older unlocked one made room
    assert throttle.failure("old") == 1  # evicted, starts again
    assert throttle.locked_until("locked") == until


def test_when_every_record_is_locked_new_keys_wait_together() -> None:
    clock = Clock()
    throttle = Throttle(POLICY, clock=clock, max_keys=3)
    locked = {key: _lock(throttle, key) for key in ("a", "b", "c")}
    for n in range(POLICY.free_failures + 1):
        throttle.failure(f"overflow{n}")
    assert len(throttle) == 3
    assert throttle.locked_until("never-failed") is not None  # fails closed
    assert all(throttle.locked_until(key) == until for key, until in locked.items())
    clock.now += POLICY.forget_after + POLICY.max_lockout
    assert throttle.locked_until("never-failed") is None  # and forgets like any record


def test_unknown_names_share_a_bounded_set_of_records() -> None:
    names = NameBuckets(buckets=16)
    keys = {names.key(f"guess{n}", known=False) for n in range(5000)}
    assert len(keys) <= 16
    assert names.key("alice", known=True) == "user:alice"
    assert names.key("alice", known=False).startswith("unknown:")  # never a user's key
    assert names.key("x", known=False) == names.key("x", known=False)
    guesses = [f"guess{n}" for n in range(200)]
    one, other = NameBuckets(key=b"1" * 32), NameBuckets(key=b"2" * 32)
    # keyed: which names share a record depends on a key fresh for each process
    assert [one.key(g, False) for g in guesses] != [other.key(g, False) for g in guesses]
    assert repr(names) == "NameBuckets(16)"


@pytest.fixture
def auth(tmp_path: Path) -> Authenticator:
    """Alice and bob in a real (0600) credentials file; a clock the test moves."""
    creds = tmp_path / "credentials.json"
    add_user(creds, "alice", "alice-password")
    add_user(creds, "bob", "bob-password")
    clock = Clock()
    return Authenticator(
        CredentialsFile(creds),
        clock=clock,
        per_address=Throttle(PER_ADDRESS, clock=clock, max_keys=10),
    )


def test_flooding_names_and_addresses_keeps_a_victim_locked(auth: Authenticator) -> None:
    auth.names = NameBuckets(buckets=4)
    for _ in range(PER_USER.free_failures + 1):
        assert not auth.sign_in("alice", "wrong", "192.0.2.1").ok
    victim = auth.sign_in("alice", "alice-password", "192.0.2.2")
    assert victim.locked_by == "user"
    for n in range(40):  # 40 new names from 40 new addresses, past both caps
        auth.sign_in(f"guess{n}", "wrong", f"198.51.100.{n}")
    assert len(auth.per_user) <= 4 + 1
    assert len(auth.per_address) <= 10
    again = auth.sign_in("alice", "alice-password", "192.0.2.3")
    assert again.locked_by == "user" and again.locked_until == victim.locked_until


def test_a_flood_of_addresses_keeps_a_locked_address_locked(auth: Authenticator) -> None:
    for _ in range(PER_ADDRESS.free_failures + 1):
        auth.sign_in("bob", "wrong", "192.0.2.66")
        auth.per_user.reset("user:bob")  # only the address is under test
    locked = auth.sign_in("alice", "alice-password", "192.0.2.66")
    assert locked.locked_by == "address"
    for n in range(30):
        auth.sign_in("alice", "wrong", f"198.51.100.{n}")
        auth.per_user.reset("user:alice")
    assert auth.sign_in("alice", "alice-password", "192.0.2.66").locked_by == "address"


def test_an_unknown_name_costs_the_same_hash_work(
    auth: Authenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int, int]] = []
    real = hashlib.scrypt

    def counting(
        password: bytes, *, salt: bytes, n: int, r: int, p: int, dklen: int = 64, **kwargs: int
    ) -> bytes:
        calls.append((n, r, p, dklen))
        return real(password, salt=salt, n=n, r=r, p=p, dklen=dklen, **kwargs)

    monkeypatch.setattr(credentials_module.hashlib, "scrypt", counting)
    assert not auth.sign_in("alice", "wrong", "192.0.2.1").ok
    known = list(calls)
    calls.clear()
    assert not auth.sign_in("nobody", "wrong", "192.0.2.1").ok
    assert len(known) == 1 and calls == known  # one scrypt, the same parameters


def test_an_unknown_name_locks_like_a_known_one(auth: Authenticator) -> None:
    answers = {}
    for user in ("alice", "nobody"):
        results = [
            auth.sign_in(user, "wrong", "192.0.2.1") for _ in range(PER_USER.free_failures + 1)
        ]
        auth.per_address.reset("192.0.2.1")
        answers[user] = [(r.ok, r.locked_by) for r in results]
    expected = [(False, "")] * PER_USER.free_failures + [(False, "user")]
    assert answers["alice"] == answers["nobody"] == expected
    alice = auth.sign_in("alice", "alice-password", "192.0.2.1")
    nobody = auth.sign_in("nobody", "alice-password", "192.0.2.1")
    assert alice.locked_by == nobody.locked_by == "user"
    assert auth.sign_in("bob", "bob-password", "192.0.2.1").ok  # others still sign in
