"""Issue 9, point 5 (review): whatever sits at the audit key's path, opening it never hangs
and never follows a link; anything but a regular file is refused in one line.

A FIFO there used to block `open()` forever (every registry change and `mlops
audit verify` hung). The commands run as real subprocesses; the timeout only
turns a hang into a failure, it measures nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from jupyter_mlops.project import Project

from .test_audit_chain import audit_rows, log_five_rows

HANG = 120  # seconds: far beyond a run of the command, only to end a hang


@pytest.fixture
def keyed(project: Project, tracker) -> Project:
    return log_five_rows(project)


def replace_key(project: Project, kind: str) -> None:
    key = project.audit_key_path
    text = key.read_text()
    key.unlink()
    if kind == "fifo":
        os.mkfifo(key, 0o600)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(key))
        server.close()
    elif kind == "link":
        real = project.root / "elsewhere.key"
        real.write_text(text)
        real.chmod(0o600)
        key.symlink_to(real)
    elif kind == "device":
        key.symlink_to("/dev/zero")


@pytest.mark.parametrize(("kind", "message"), [
    ("fifo", "not a regular file"),
    ("socket", "audit key"),
    ("link", "is a symbolic link"),
    ("device", "is a symbolic link"),
])
def test_a_key_path_that_is_not_a_regular_file_is_refused(keyed: Project, kind: str,
                                                          message: str) -> None:
    replace_key(keyed, kind)
    before = audit_rows(keyed)
    for command in (["audit", "verify"], ["models", "alias", "churn:1", "canary",
                                          "--reason", "try"]):
        result = mlops(keyed, *command)
        assert result.returncode == 1, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert audit_rows(keyed) == before


def mlops(project: Project, *args: str) -> subprocess.CompletedProcess:
    """The real `mlops` command; a hang fails the test instead of stalling the run."""
    return run(project, "-m", "jupyter_mlops.cli.main", *args)


def run(project: Project, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                              cwd=project.root, timeout=HANG,
                              env={**os.environ, "MLOPS_HOME": str(project.root)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(args)}` hung (opening a FIFO as the audit key?)")


def test_init_leaves_a_fifo_at_the_key_path_and_the_first_append_refuses_it(tmp_path) -> None:
    """`mlops init` never writes through an entry at the key path; the first audit row,
    which needs the key, is refused instead of blocking."""
    home = tmp_path / ".mlops"
    home.mkdir(mode=0o700)
    os.mkfifo(home / "audit.key", 0o600)
    project = Project(root=tmp_path)
    assert mlops(project, "init").returncode == 0
    assert (home / "audit.key").is_fifo()
    assert mlops(project, "audit", "verify").returncode == 0  # an empty log needs no key
    append = run(project, "-c", "import sys; from jupyter_mlops.store import Store\n"
                 "with Store(sys.argv[1]) as store:\n"
                 "    store.releases.set_alias('churn', 'staging', 1, actor='bob', reason='x')",
                 str(home / "mlops.db"))
    assert append.returncode == 1 and "not a regular file" in append.stderr, append.stderr
    assert audit_rows(project) == []
