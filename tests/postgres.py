"""A throwaway PostgreSQL cluster for the tests: one per test session, a fresh
database per test.

`cluster()` starts it on first use (initdb + pg_ctl from `pg_config --bindir`,
as the `postgres` user when the tests run as root, since initdb refuses root),
in a temporary folder, on a free port, listening on 127.0.0.1 only, with trust
authentication for local TCP; `stop_cluster()` (registered with atexit, and
called at session end by conftest) stops it with `pg_ctl stop -m immediate`
and removes the folder. `fresh_database_url()` creates an empty database and
returns its URL: the plain function the server tests call; conftest's
`pg_url` fixture wraps it.

`postgres_missing()` says why the cluster can't run here (no binaries), or
None. Tests skip with that reason locally and fail when `CI` is set.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

PG_USER = "postgres"  # the OS user running the cluster when the tests run as root
DB_USER = "mlops"  # the database superuser initdb creates


@dataclass
class Cluster:
    folder: Path
    port: int
    bindir: Path
    as_user: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{database}"


_cluster: Cluster | None = None
_lock = threading.Lock()
_counter = itertools.count(1)


def bindir() -> Path | None:
    """PostgreSQL's program folder: `MLOPS_PG_BINDIR` if set, else `pg_config --bindir`,
    else the newest /usr/lib/postgresql/*/bin; None when not installed."""
    if "MLOPS_PG_BINDIR" in os.environ:
        folder = Path(os.environ["MLOPS_PG_BINDIR"])
        return folder if (folder / "initdb").exists() else None
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (candidate / "initdb").exists():
                return candidate
        return None
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    folder = Path(out.stdout.strip())
    return folder if (folder / "initdb").exists() else None


def postgres_missing() -> str | None:
    """Why no cluster can be started here, or None when one can."""
    folder = bindir()
    if folder is None:
        return ("PostgreSQL's initdb/pg_ctl were not found (MLOPS_PG_BINDIR, pg_config "
                "--bindir, /usr/lib/postgresql/*/bin): apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install -e '.[test]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root and there is no {PG_USER!r} user to run initdb as"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cluster() -> Cluster:
    """The session's cluster, started on first call. Raises RuntimeError with initdb's
    or pg_ctl's output when it can't start."""
    global _cluster
    with _lock:
        if _cluster is not None:
            return _cluster
        problem = postgres_missing()
        if problem is not None:
            raise RuntimeError(problem)
        programs = bindir()
        assert programs is not None
        root = os.geteuid() == 0
        # As root, the postgres user must reach the folder: /tmp, not a TMPDIR under /root.
        folder = Path(tempfile.mkdtemp(prefix="mlops-pg-",
                                       dir="/tmp" if root and os.path.isdir("/tmp") else None))
        as_user: list[str] = []
        if root:
            entry = pwd.getpwnam(PG_USER)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            as_user = ["runuser", "-u", PG_USER, "--"]
        data = folder / "data"

        def run(*args: str) -> None:
            done = subprocess.run([*as_user, *args], capture_output=True, text=True,
                                  check=False, cwd=folder)
            if done.returncode != 0:
                raise RuntimeError(f"{args[0]} failed ({done.returncode}): "
                                   f"{done.stdout}{done.stderr}")

        run(str(programs / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync")
        for attempt in range(5):  # a port found free may be taken before the start
            port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                       f"-c unix_socket_directories={folder} -c fsync=off "
                       "-c full_page_writes=off -c synchronous_commit=off "
                       "-c max_connections=200")
            try:
                run(str(programs / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"),
                    "-o", options, "-w", "-t", "60", "start")
                break
            except RuntimeError:
                if attempt == 4:
                    log = (folder / "log").read_text(errors="replace")[-2000:]
                    shutil.rmtree(folder, ignore_errors=True)
                    raise RuntimeError(f"pg_ctl start failed:\n{log}") from None
        _cluster = Cluster(folder, port, programs, as_user)
        atexit.register(stop_cluster)
        return _cluster


def stop_cluster() -> None:
    """Stop the session's cluster (immediately: it is thrown away) and remove its folder."""
    global _cluster
    with _lock:
        if _cluster is None:
            return
        found, _cluster = _cluster, None
    subprocess.run([*found.as_user, str(found.bindir / "pg_ctl"), "-D",
                    str(found.folder / "data"), "-m", "immediate", "-w", "stop"],
                   capture_output=True, check=False, cwd=found.folder)
    shutil.rmtree(found.folder, ignore_errors=True)


def fresh_database_url(prefix: str = "t") -> str:
    """Create an empty database on the session's cluster and return its URL
    (`postgresql://mlops@127.0.0.1:PORT/NAME`)."""
    import psycopg

    running = cluster()
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(running.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return running.url(name)
