"""Issue 9, points 3 and 9 (the dashboard's part): roles come only from the
project's config.toml; the credentials file holds password hashes and the
cookie secret, is created 0600, and a file group or others may read or write
is refused at start (as ssh refuses a shared private key), naming the fix.

Real files and real `mlops` processes; no server stays up (the refusals happen
before it listens).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tornado.web import create_signed_value

import jupyter_mlops as mlops
from jupyter_mlops.dashboard.authenticator import COOKIE, Authenticator
from jupyter_mlops.dashboard.context import DashboardContext
from jupyter_mlops.dashboard.credentials import (
    CredentialsFile,
    add_user,
    load_credentials,
    roles_warning,
)
from jupyter_mlops.errors import InvalidInput


def _mlops(*args: str, cwd: Path, stdin: str | None = None,
           umask: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_mlops.cli.main", *args], cwd=cwd, input=stdin,
        capture_output=True, text=True, timeout=120, env={**os.environ, "MLOPS_HOME": str(cwd)},
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project, also MLOPS_HOME (which wins over any folder passed in)."""
    mlops.init(tmp_path)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    return tmp_path


def test_credentials_add_creates_a_private_file_even_with_umask_0(home: Path) -> None:
    result = _mlops("credentials", "add", "alice", "--password-stdin", "--file", "creds.json",
                    cwd=home, stdin="alice-password\n", umask=0)
    assert result.returncode == 0, result.stderr
    assert _mode(home / "creds.json") == 0o600
    assert "config.toml" in result.stdout
    assert list(home.glob(".creds.json.*")) == []  # no temporary left behind


def test_credentials_add_refuses_roles_and_points_at_config_toml(home: Path) -> None:
    result = _mlops("credentials", "add", "bob", "--role", "reviewer", "--password-stdin",
                    "--file", "creds.json", cwd=home, stdin="bob-password\n")
    assert result.returncode == 1
    assert "[users.bob]" in result.stderr and "config.toml" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "creds.json").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o666, 0o610])
def test_the_dashboard_refuses_a_shared_credentials_file(home: Path, mode: int) -> None:
    creds = home / "creds.json"
    add_user(creds, "alice", "alice-password")
    creds.chmod(mode)
    result = _mlops("dashboard", "--auth", str(creds), "--port", "1", cwd=home)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert str(creds) in line and f"{mode:04o}" in line
    assert f"chmod 600 {creds}" in line
    assert "Traceback" not in result.stderr


def test_a_password_change_keeps_the_file_private_and_drops_old_roles(home: Path) -> None:
    creds = home / "creds.json"
    add_user(creds, "alice", "alice-password")
    data = json.loads(creds.read_text())
    data["users"]["alice"]["roles"] = ["admin"]
    creds.write_text(json.dumps(data))
    creds.chmod(0o644)  # an older version's file, shared by mistake
    assert add_user(creds, "alice", "new-password") is True
    assert _mode(creds) == 0o600
    rewritten = json.loads(creds.read_text())
    assert rewritten["cookie_secret"] == data["cookie_secret"]
    assert set(rewritten["users"]["alice"]) == {"password"}


def test_roles_left_in_the_file_are_ignored_with_one_warning(home: Path) -> None:
    creds = home / "creds.json"
    add_user(creds, "alice", "alice-password")
    add_user(creds, "bob", "bob-password")
    data = json.loads(creds.read_text())
    data["users"]["bob"]["roles"] = ["admin", "reviewer"]
    creds.write_text(json.dumps(data))
    creds.chmod(0o600)
    loaded = load_credentials(creds)
    assert loaded.ignored_roles == ("bob",)
    warning = roles_warning(creds, loaded)
    assert warning is not None and "\n" not in warning
    assert "bob" in warning and "config.toml" in warning


def test_the_signed_in_users_roles_come_from_config_toml(home: Path) -> None:
    config = home / ".mlops" / "config.toml"
    config.write_text(config.read_text() + '\n[users.alice]\nroles = ["reviewer"]\n')
    creds = home / "creds.json"
    add_user(creds, "alice", "alice-password")
    add_user(creds, "bob", "bob-password")
    data = json.loads(creds.read_text())
    data["users"]["bob"]["roles"] = ["admin"]  # the file says admin: ignored
    creds.write_text(json.dumps(data))
    creds.chmod(0o600)
    auth = Authenticator(CredentialsFile(creds))
    context = DashboardContext(root=home, auth=auth)
    for user, roles in (("alice", {"reviewer"}), ("bob", set())):
        session = auth.sign_in(user, f"{user}-password", "127.0.0.1").session_id
        cookie = create_signed_value(auth.cookie_secret, COOKIE, session).decode()
        identity = context.identity(cookie)
        assert identity is not None and identity.user == user and identity.roles == roles
    assert context.identity(create_signed_value(auth.cookie_secret, COOKIE,
                                                "alice").decode()) is None  # a name: no
    assert context.identity(None) is None


def test_the_cookie_secret_stays_out_of_reprs(home: Path) -> None:
    creds = home / "creds.json"
    add_user(creds, "alice", "alice-password")
    secret = json.loads(creds.read_text())["cookie_secret"]
    auth = Authenticator(CredentialsFile(creds))
    for shown in (repr(load_credentials(creds)), repr(auth), str(auth),
                  repr(CredentialsFile(creds)), repr(auth.sessions)):
        assert secret not in shown and "scrypt$" not in shown


def test_a_file_made_shared_while_serving_stops_sign_ins(home: Path) -> None:
    creds = home / "creds.json"
    add_user(creds, "alice", "alice-password")
    auth = Authenticator(CredentialsFile(creds))
    session = auth.sign_in("alice", "alice-password", "127.0.0.1").session_id
    assert auth.user_for(session) == "alice"
    creds.chmod(0o644)
    assert auth.user_for(session) is None  # fails closed
    assert auth.sign_in("alice", "alice-password", "127.0.0.1").unavailable
    with pytest.raises(InvalidInput, match="chmod 600"):
        load_credentials(creds)
