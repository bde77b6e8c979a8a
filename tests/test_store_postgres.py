"""What only PostgreSQL has: migrations raced by processes, a server that goes away,
a read-only database, a writer queued on the advisory lock, the DDL it renders.

All against the session's real cluster (tests/postgres.py); the SQLite forms of
these live in test_store.py.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from jupyter_mlops.errors import StoreUnavailable
from jupyter_mlops.store import Store
from jupyter_mlops.store.postgres import WRITE_LOCK_KEY, safe_url
from jupyter_mlops.store.runs import NewRun
from jupyter_mlops.store.schema import SCHEMA_VERSION


@pytest.fixture
def pg_store(pg_url: str):
    with Store(pg_url) as store:
        store.migrate()
        yield store


def _run(store: Store, name: str = "r") -> int:
    return store.runs.create(NewRun(uuid=uuid.uuid4().hex, name=name, started_at=time.time(),
                                    source_kind="script"))


def _admin(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


MIGRATE = """
import sys
from jupyter_mlops.store import Store
with Store(sys.argv[1]) as store:
    print(store.migrate())
"""


def test_migrations_run_exactly_once_when_eight_processes_start_at_once(pg_url: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, pg_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    applied = [out.strip() for out, _ in outputs]
    assert applied.count(str(list(range(1, SCHEMA_VERSION + 1)))) == 1, applied
    assert applied.count("[]") == 7
    with Store(pg_url) as store:
        assert store.schema_version == SCHEMA_VERSION and store.migrate() == []


def test_opening_does_not_migrate(pg_url: str) -> None:
    with Store(pg_url) as store:
        assert store.schema_version == 0 and store.needs_migration()
        assert store.dialect == "postgresql" and store.path is None and store.url == pg_url


def test_a_percent_sign_is_itself_with_or_without_parameters(pg_store: Store) -> None:
    conn = pg_store._conn
    assert conn.execute("SELECT 5 % 2, 'a%b'").fetchone() == (1, "a%b")
    assert conn.execute("SELECT 5 % ?, 'a%b', ?", (3, "%")).fetchone() == (2, "a%b", "%")


def test_the_rendered_schema_has_postgresql_types(pg_store: Store, pg_url: str) -> None:
    with _admin(pg_url) as conn:
        types = dict(conn.execute(
            "SELECT table_name || '.' || column_name, data_type || ' ' || is_identity "
            "FROM information_schema.columns WHERE table_schema = 'public'").fetchall())
    assert types["runs.id"] == "bigint YES"
    assert types["runs.user"] == "text NO"
    assert types["metrics.value"] == "double precision NO"
    assert types["metrics.rowid"] == "bigint YES"  # SQLite's implicit rowid, for ordering


WRITER = """
import sys, threading, time, uuid
from jupyter_mlops.store import Store
from jupyter_mlops.store.runs import NewRun
store = Store(sys.argv[1])
run_id = store.runs.create(NewRun(uuid=uuid.uuid4().hex, name=sys.argv[2],
                                  started_at=time.time(), source_kind="script"))
def log(key):
    for step in range(300):
        store.runs.log_metrics(run_id, [(key, float(step), step, time.time())])
threads = [threading.Thread(target=log, args=(f"t{i}",)) for i in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print(run_id)
"""


def test_threads_and_processes_writing_at_once_lose_nothing(pg_store: Store) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, pg_store.url, f"w{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    for out, _ in outputs:
        run = pg_store.runs.get(int(out))
        assert run.metrics == {"t0": 299.0, "t1": 299.0, "t2": 299.0}
        for key in run.metrics:
            steps = [p.step for p in pg_store.runs.metric_history(run.id, key)]
            assert steps == list(range(300))


def test_an_unreachable_server_is_one_line_without_the_password(pg_url: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"postgresql://mlops:s3cret@127.0.0.1:{port}/nothing"
    with pytest.raises(StoreUnavailable) as info:
        Store(url)
    message = str(info.value)
    assert "s3cret" not in message and "\n" not in message
    assert "cannot connect" in message and f"127.0.0.1:{port}" in message
    assert safe_url(url) == f"postgresql://mlops:***@127.0.0.1:{port}/nothing"
    with pytest.raises(StoreUnavailable, match="does not exist"):
        Store(pg_url.rsplit("/", 1)[0] + "/no_such_database")


def test_a_lost_connection_is_unavailable_then_reconnects(pg_store: Store, pg_url: str
                                                          ) -> None:
    run_id = _run(pg_store)
    with _admin(pg_url) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(StoreUnavailable, match="unreachable") as info:
        pg_store.runs.log_params(run_id, {"C": "1"})
    assert "\n" not in str(info.value)
    pg_store.runs.log_params(run_id, {"C": "2"})  # the next call connects again
    assert pg_store.runs.get(run_id).params == {"C": "2"}


def test_a_read_only_database_is_a_clear_error(pg_store: Store, pg_url: str) -> None:
    run_id = _run(pg_store)
    database = pg_url.rsplit("/", 1)[1]
    with _admin(pg_url) as admin:
        admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    with Store(pg_url) as read_only:
        with pytest.raises(StoreUnavailable, match="read-only"):
            read_only.runs.log_params(run_id, {"C": "1"})
        assert read_only.runs.get(run_id).params == {}  # reads still work


def test_a_writer_waits_for_the_lock_then_says_how_long(pg_url: str) -> None:
    with Store(pg_url) as store:
        store.migrate()
    with Store(pg_url, busy_seconds=0.2) as impatient, _admin(pg_url) as holder:
        run_id = _run(impatient)
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
        with pytest.raises(StoreUnavailable, match="write lock for more than 0.2 s"):
            impatient.runs.log_params(run_id, {"C": "1"})
        holder.execute("ROLLBACK")
        impatient.runs.log_params(run_id, {"C": "1"})  # nothing left open
        assert impatient.runs.get(run_id).params == {"C": "1"}


def test_a_second_writer_queues_behind_the_first(pg_store: Store, pg_url: str) -> None:
    """Two stores (two connections, as two processes have): the second's write waits
    for the first's commit on the advisory lock, and then goes through."""
    run_id = _run(pg_store)
    with Store(pg_url) as other:
        inside, release, done = threading.Event(), threading.Event(), threading.Event()

        def hold() -> None:
            with pg_store.transaction():
                pg_store.runs.log_params(run_id, {"first": "1"})
                inside.set()
                release.wait(10)

        def second() -> None:
            other.runs.log_params(run_id, {"second": "2"})
            done.set()

        holder = threading.Thread(target=hold)
        holder.start()
        inside.wait(10)
        writer = threading.Thread(target=second)
        writer.start()
        assert not done.wait(0.3)
        release.set()
        holder.join()
        writer.join()
    assert pg_store.runs.get(run_id).params == {"first": "1", "second": "2"}


def test_psycopg_is_never_imported_on_the_embedded_path(tmp_path) -> None:
    """Not by the CLI, `%load_ext`, nor a SQLite store opened, migrated and read."""
    code = f"""
import sys, time
import jupyter_mlops.cli.main
from IPython.testing.globalipapp import get_ipython
get_ipython().run_line_magic("load_ext", "jupyter_mlops")
from jupyter_mlops.store import Store
with Store({str(tmp_path / 's.db')!r}, create=True) as store:
    store.migrate()
    store.runs.search()
print(sorted(m for m in sys.modules if 'psycopg' in m or m == 'jupyter_mlops.store.postgres'))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_errors_of_either_database_are_database_errors(pg_store: Store) -> None:
    import sqlite3

    import psycopg

    from jupyter_mlops.store.connection import is_database_error

    with pytest.raises(sqlite3.IntegrityError) as info:  # through the store: sqlite3's family
        pg_store.runs.log_metrics(10**9, [("m", 1.0, None, time.time())])
    assert is_database_error(info.value) and "foreign key" in str(info.value)
    assert is_database_error(psycopg.errors.UndefinedTable("raw, from psycopg"))
    assert not is_database_error(ValueError("not a database's"))


PROBE = """
def test_probe(pg_url):
    pass
"""


@pytest.mark.parametrize(("ci", "outcome"), [("", "1 skipped"), ("1", "1 error")])
def test_missing_postgresql_skips_locally_and_fails_in_ci(tmp_path, ci: str,
                                                          outcome: str) -> None:
    import os
    import shutil
    from pathlib import Path

    tests = Path(__file__).parent
    probe = tmp_path / "tests"
    probe.mkdir()
    shutil.copy(tests / "conftest.py", probe / "conftest.py")
    shutil.copy(tests / "postgres.py", probe / "postgres.py")
    (probe / "__init__.py").write_text("")
    (probe / "test_probe.py").write_text(PROBE)
    env = {**os.environ, "MLOPS_PG_BINDIR": str(tmp_path / "nowhere"), "CI": ci}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rs", str(probe)], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert outcome in done.stdout, done.stdout
    assert "apt-get install postgresql" in done.stdout


def test_a_failing_migration_leaves_nothing(pg_url: str, monkeypatch) -> None:
    from jupyter_mlops.store import schema

    def broken(db) -> None:
        db.create_table("half_made", {"id": int}, pk="id")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS[:-1], broken])
    with Store(pg_url) as store:
        with pytest.raises(RuntimeError, match="migration bug"):
            store.migrate()
        assert store.schema_version == 0  # PostgreSQL's DDL is transactional
        assert store._conn.execute("SELECT to_regclass('runs')").fetchone()[0] is None
        monkeypatch.undo()
        assert store.migrate() == list(range(1, SCHEMA_VERSION + 1))


def test_a_connection_lost_inside_a_transaction_keeps_none_of_it(pg_store: Store,
                                                                 pg_url: str) -> None:
    run_id = _run(pg_store)
    with pytest.raises(StoreUnavailable), pg_store.transaction():
        pg_store.runs.log_params(run_id, {"a": "1"})
        with _admin(pg_url) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        pg_store.runs.log_params(run_id, {"b": "2"})
    assert pg_store.runs.get(run_id).params == {}
    pg_store.runs.log_params(run_id, {"c": "3"})
    assert pg_store.runs.get(run_id).params == {"c": "3"}


@pytest.fixture
def small_tablespace(tmp_path, pg_url: str):
    """A 2 MiB tmpfs holding a tablespace `small` (root only: it mounts), removed after."""
    import os
    import pwd

    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    folder = Path(tempfile.mkdtemp(prefix="mlops-small-", dir="/tmp"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        entry = pwd.getpwnam("postgres")
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        with _admin(pg_url) as admin:
            admin.execute(f"CREATE TABLESPACE small LOCATION '{folder}'")
        yield "small"
    finally:
        with _admin(pg_url) as admin:
            for table in ("params",):
                admin.execute(f"ALTER TABLE IF EXISTS {table} SET TABLESPACE pg_default")
            admin.execute("DROP TABLESPACE IF EXISTS small")
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()


def test_a_full_disk_loses_nothing_written_before_and_says_so(pg_store: Store,
                                                              small_tablespace: str) -> None:
    run_id = _run(pg_store)
    pg_store.runs.log_params(run_id, {"kept": "1"})
    with pg_store.transaction() as conn:  # params now live on the 2 MiB filesystem
        conn.execute(f"ALTER TABLE params SET TABLESPACE {small_tablespace}")
    with pytest.raises(StoreUnavailable, match="disk .* is full") as info:
        for batch in range(100):
            pg_store.runs.log_params(run_id, {f"p{batch}-{i}": "x" * 5000 for i in range(200)})
    assert "\n" not in str(info.value)
    params = pg_store.runs.get(run_id).params  # the batches before the full one, whole
    assert params["kept"] == "1" and (len(params) - 1) % 200 == 0
    pg_store.runs.set_tags(run_id, {"after": "2"})  # no transaction left open
