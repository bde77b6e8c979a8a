from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from jupyter_mlops.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from jupyter_mlops.store import Store
from jupyter_mlops.store.runs import NewRun
from jupyter_mlops.store.schema import SCHEMA_VERSION

pytestmark = pytest.mark.both_backends
SQLITE_PRAGMAS = pytest.mark.sqlite_only("drives SQLite's own fault through a PRAGMA; "
                                         "test_store_postgres.py has PostgreSQL's")


def _new_run(store: Store, name: str = "r") -> int:
    return store.runs.create(NewRun(uuid=uuid.uuid4().hex, name=name, started_at=time.time(),
                                    source_kind="script"))


def test_opening_does_not_create_or_migrate(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="mlops init"):
        Store(tmp_path / "missing.db")
    with Store(tmp_path / "new.db", create=True) as store:
        assert store.schema_version == 0
        assert store.migrate() == list(range(1, SCHEMA_VERSION + 1))
        assert store.migrate() == []
        mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_a_sqlite_url_opens_the_file(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db", create=True) as store:
        store.migrate()
        run_id = _new_run(store)
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert store.runs.get(run_id).name == "r"
        assert store.dialect == "sqlite" and store.url is None
    with pytest.raises(NotFound, match="mlops init"):
        Store(f"sqlite:///{tmp_path / 'missing.db'}")


def test_the_sqlite_schema_keeps_its_audit_triggers_word_for_word(tmp_path: Path) -> None:
    """Migrations go through store/ddl.py now; SQLite's DDL must stay what it was."""
    with Store(tmp_path / "s.db", create=True) as store:
        store.migrate()
        triggers = dict(store._conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"))
    assert triggers == {
        f"audit_log_no_{event.lower()}": f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE "
        f"{event} ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        for event in ("UPDATE", "DELETE")}


MIGRATE = """
import sys
from jupyter_mlops.store import Store
with Store(sys.argv[1], create=True) as store:
    print(store.migrate())
"""


def test_concurrent_migrations_run_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "race.db"
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, str(db)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    applied = [out.strip() for out, _ in outputs]
    assert applied.count(str(list(range(1, SCHEMA_VERSION + 1)))) == 1
    assert applied.count("[]") == 7
    with Store(db) as store:
        assert store.schema_version == SCHEMA_VERSION


WRITER = """
import sys, time, uuid
from jupyter_mlops.store import Store
from jupyter_mlops.store.runs import NewRun
store = Store(sys.argv[1])
run_id = store.runs.create(NewRun(uuid=uuid.uuid4().hex, name=sys.argv[2],
                                  started_at=time.time(), source_kind="script"))
for step in range(1000):
    store.runs.log_metrics(run_id, [("loss", float(step), step, time.time())])
print(run_id)
"""


def test_eight_processes_logging_at_once_lose_nothing(store: Store) -> None:
    target = store.url or str(store.path)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, target, f"w{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    outputs = [p.communicate(timeout=300) for p in procs]
    errors = [err for _, err in outputs if err.strip()]
    assert not errors, errors[0]
    assert all(p.returncode == 0 for p in procs)
    for out, _ in outputs:
        run_id = int(out)
        history = store.runs.metric_history(run_id, "loss")
        assert [p.step for p in history] == list(range(1000))
        assert store.runs.get(run_id).metrics == {"loss": 999.0}


def test_params_are_write_once(store: Store) -> None:
    run_id = _new_run(store)
    store.runs.log_params(run_id, {"C": "0.5"})
    store.runs.log_params(run_id, {"C": "0.5"})  # same value again is fine
    with pytest.raises(Conflict, match="already '0.5'"):
        store.runs.log_params(run_id, {"C": "1.0"})
    assert store.runs.get(run_id).params == {"C": "0.5"}


@pytest.mark.parametrize("key", ["", "a\nb", "x" * 251, 3, "acc\u202e", "a\x85b", "a\u2028b"])
def test_bad_keys_are_refused(store: Store, key: object) -> None:
    run_id = _new_run(store)
    with pytest.raises(InvalidInput):
        store.runs.log_params(run_id, {key: "v"})


@pytest.mark.parametrize("name", ["run\u202egnp.exe", "a\nb", "x" * 300])
def test_run_names_that_display_as_something_else_are_refused(store: Store, name: str) -> None:
    with pytest.raises(InvalidInput, match="run name"):
        store.runs.create(NewRun(uuid=uuid.uuid4().hex, name=name, started_at=time.time(),
                                 source_kind="script"))


def test_huge_values_are_refused_with_advice(store: Store) -> None:
    run_id = _new_run(store)
    with pytest.raises(InvalidInput, match="artifact"):
        store.runs.set_tags(run_id, {"note": "x" * 10_000})


def test_latest_metric_follows_the_highest_step(store: Store) -> None:
    run_id = _new_run(store)
    now = time.time()
    store.runs.log_metrics(run_id, [("loss", 0.5, 5, now), ("loss", 0.9, 1, now)])
    assert store.runs.get(run_id).metrics["loss"] == 0.5
    store.runs.log_metrics(run_id, [("loss", 0.4, 6, now)])
    assert store.runs.get(run_id).metrics["loss"] == 0.4


def test_failed_write_rolls_back(store: Store) -> None:
    run_id = _new_run(store)
    with pytest.raises(sqlite3.IntegrityError):
        store.runs.log_metrics(run_id, [("ok", 1.0, None, time.time()),
                                        ("bad", 1.0, None, None)])  # timestamp NOT NULL
    assert store.runs.get(run_id).metrics == {}
    store.runs.log_metrics(run_id, [("ok", 2.0, None, time.time())])  # no transaction left open


def test_a_transaction_keeps_all_its_calls_or_none(store: Store) -> None:
    with store.transaction():
        kept = _new_run(store, "kept")
        store.runs.log_params(kept, {"a": "1"})
        with pytest.raises(Conflict):  # an inner call that fails undoes only itself
            store.runs.log_params(kept, {"a": "2", "b": "3"})
        store.runs.log_metrics(kept, [("m", 1.0, None, time.time())])
    assert store.runs.get(kept).params == {"a": "1"}
    assert store.runs.get(kept).metrics == {"m": 1.0}
    with pytest.raises(RuntimeError), store.transaction():
        _new_run(store, "undone")
        raise RuntimeError("the block failed")
    assert [run.name for run in store.runs.search()] == ["kept"]
    _new_run(store, "after")  # no transaction left open


@SQLITE_PRAGMAS
def test_a_full_disk_loses_nothing_written_before_and_says_so(store: Store) -> None:
    run_id = _new_run(store)
    store.runs.log_params(run_id, {"kept": "1"})
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's SQLITE_FULL, for real
    with pytest.raises(StoreUnavailable, match="disk holding the store is full"):
        store.runs.log_params(run_id, {f"p{i}": "x" * 900 for i in range(200)})
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.runs.get(run_id).params == {"kept": "1"}  # all or nothing
    store.runs.log_params(run_id, {"after": "2"})  # no transaction left open


@SQLITE_PRAGMAS
def test_a_read_only_database_is_a_clear_error(store: Store) -> None:
    run_id = _new_run(store)
    store._conn.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreUnavailable, match="read-only"):
        store.runs.log_params(run_id, {"C": "1"})


def test_resolve_by_id_and_uuid_prefix(store: Store) -> None:
    run_id = _new_run(store)
    run = store.runs.get(run_id)
    assert store.runs.resolve(str(run_id)).uuid == run.uuid
    assert store.runs.resolve(run.uuid[:10]).id == run_id
    with pytest.raises(NotFound):
        store.runs.resolve("999999")
    with pytest.raises(NotFound):
        store.runs.resolve("../../etc")


def test_a_uuid_prefix_of_digits_only_resolves_to_its_run(store: Store) -> None:
    run_id = store.runs.create(NewRun(uuid="85858359365142aa" + "0" * 16, name="digits",
                                      started_at=time.time(), source_kind="script"))
    assert store.runs.resolve("858583593651").id == run_id  # no run has that id
    assert store.runs.resolve(str(run_id)).id == run_id  # an id still wins
    with pytest.raises(NotFound):
        store.runs.resolve("99999999999")


def test_stale_heartbeat_shows_killed(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db", create=True, stale_after_seconds=60) as store:
        store.migrate()
        run_id = _new_run(store)
        store.runs.heartbeat(run_id, at=time.time() - 61)
        assert store.runs.get(run_id).status == "killed"
        assert [r.id for r in store.runs.search("status = 'killed'")] == [run_id]
        store.runs.heartbeat(run_id)
        assert store.runs.get(run_id).status == "running"


def test_search_by_notebook_is_its_own_condition(store_with_runs: Store) -> None:
    """The notebook path never joins the user's expression: a path with quotes and
    `or` can't widen the match, and a filter at the depth limit stays accepted."""
    run = store_with_runs.runs.search(limit=1)[0]
    assert [r.id for r in store_with_runs.runs.search(notebook=run.notebook)]
    assert store_with_runs.runs.search(notebook='x" or "1" = "1') == []
    deepest = "(" * 32 + "metrics.acc > 0" + ")" * 32
    found = store_with_runs.runs.search(deepest, notebook=run.notebook)
    assert run.id in [r.id for r in found]
