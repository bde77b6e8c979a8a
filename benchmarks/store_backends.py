"""The store's SQL layer: what it costs, and that the embedded path did not get slower.

    python benchmarks/store_backends.py [--before DIR] [--sqlalchemy DIR] [--rounds N]

1. The choice of SQL layer (issue 11 point 1): import time of sqlite3, psycopg,
   SQLAlchemy and jupyter_mlops (each in a fresh interpreter, minus `python -c
   pass`), and the per-call cost of one committed metric on SQLite through the
   store's raw sqlite3 path and through SQLAlchemy Core running the very same
   statements, beside a bare sqlite3 commit of one row, all in one process.
   `--sqlalchemy DIR` is a folder SQLAlchemy was installed into with
   `pip install --target DIR sqlalchemy` (it is no dependency of the project).
2. Before and after: with `--before DIR` (a checkout of the revision before the
   PostgreSQL store, e.g. `git worktree add DIR REV`) and `--after DIR` (default:
   this checkout), `run.log_metric` (median
   per call, over a bare commit measured in the same process), `mlops runs ls`
   on a store of 10,000 runs (wall, fresh process) and `%load_ext jupyter_mlops`
   in a fresh kernel, each measured alternately for the two revisions, so
   that load on this shared machine falls on both alike.
3. The same metric committed on PostgreSQL (the session cluster of
   tests/postgres.py), for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
PY = sys.executable


def _wall(code: str, env: dict[str, str] | None = None, repeat: int = 7) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([PY, "-c", code], check=True, env=env, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def import_times(sqlalchemy_dir: str | None) -> dict:
    env = dict(os.environ)
    if sqlalchemy_dir:
        env["PYTHONPATH"] = sqlalchemy_dir
    empty = _wall("pass", env)
    modules = ["sqlite3", "psycopg", "jupyter_mlops", "jupyter_mlops.store"]
    if sqlalchemy_dir:
        modules.append("sqlalchemy")
    return {f"import_{m}_ms": (_wall(f"import {m}", env) - empty) * 1e3 for m in modules}


LOG_ONE = """
import json, sqlite3, statistics, sys, tempfile, time, uuid
from pathlib import Path
CALLS = int(sys.argv[1])
folder = Path(tempfile.mkdtemp())
from jupyter_mlops.store import Store
from jupyter_mlops.store.runs import NewRun, _INSERT_METRIC, _UPSERT_LATEST

def median_call(fn):
    samples = []
    for i in range(CALLS):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6

bare = sqlite3.connect(folder / "bare.db", isolation_level=None)
bare.execute("PRAGMA journal_mode=WAL"); bare.execute("PRAGMA synchronous=NORMAL")
bare.execute("CREATE TABLE m (run INTEGER, key TEXT, value REAL, step INTEGER, ts REAL)")
def bare_commit(i):
    bare.execute("BEGIN IMMEDIATE")
    bare.execute("INSERT INTO m VALUES (1, 'loss', ?, ?, ?)", (float(i), i, time.time()))
    bare.execute("COMMIT")

store = Store(folder / "s.db", create=True); store.migrate()
run_id = store.runs.create(NewRun(uuid=uuid.uuid4().hex, name="b", started_at=time.time(),
                                  source_kind="script"))
def raw(i):
    store.runs.log_metrics(run_id, [("loss", float(i), i, time.time())])

result = {}
sa_dir = sys.argv[2] if len(sys.argv) > 2 else ""
if sa_dir:
    sys.path.insert(0, sa_dir)
    import sqlalchemy as sa
    sa_store = Store(folder / "sa.db", create=True); sa_store.migrate()
    sa_run = sa_store.runs.create(NewRun(uuid=uuid.uuid4().hex, name="b",
                                         started_at=time.time(), source_kind="script"))
    sa_store.close()
    engine = sa.create_engine(f"sqlite:///{folder / 'sa.db'}", isolation_level="AUTOCOMMIT")
    conn = engine.connect()
    conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
    insert = sa.text(_INSERT_METRIC.replace("(?, ?, ?, ?, ?)",
                                            "(:run, :key, :value, :step, :ts)"))
    upsert = sa.text(_UPSERT_LATEST.replace("(?, ?, ?, ?, ?)",
                                            "(:run, :key, :value, :step, :ts)"))
    def core(i):
        row = {"run": sa_run, "key": "loss", "value": float(i), "step": i, "ts": time.time()}
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.execute(insert, row)
        conn.execute(upsert, row)
        conn.exec_driver_sql("COMMIT")
for rnd in range(3):  # interleaved, the last round kept
    result["bare_commit_us"] = median_call(bare_commit)
    result["store_raw_sqlite3_us"] = median_call(raw)
    if sa_dir:
        result["sqlalchemy_core_us"] = median_call(core)
print(json.dumps(result))
"""


def per_call(calls: int, sqlalchemy_dir: str | None) -> dict:
    out = subprocess.run([PY, "-c", LOG_ONE, str(calls), sqlalchemy_dir or ""], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out)


TRACK = """
import json, sqlite3, statistics, sys, time
from pathlib import Path
import jupyter_mlops as mlops
from jupyter_mlops.tracking import Tracker
root = Path(sys.argv[1]); calls = int(sys.argv[2])
project = mlops.init(root)
tracker = Tracker(project)
run = tracker.start_run("bench")
bare = sqlite3.connect(root / "bare.db", isolation_level=None)
bare.execute("PRAGMA journal_mode=WAL"); bare.execute("PRAGMA synchronous=NORMAL")
bare.execute("CREATE TABLE m (run INTEGER, key TEXT, value REAL, step INTEGER, ts REAL)")
ours, base = [], []
for i in range(calls):
    start = time.perf_counter()
    bare.execute("BEGIN IMMEDIATE")
    bare.execute("INSERT INTO m VALUES (1, 'loss', ?, ?, ?)", (float(i), i, time.time()))
    bare.execute("COMMIT")
    base.append(time.perf_counter() - start)
    start = time.perf_counter()
    run.log_metric("loss", float(i), step=i)
    ours.append(time.perf_counter() - start)
run.end()
print(json.dumps({"log_metric_us": statistics.median(ours) * 1e6,
                  "bare_commit_us": statistics.median(base) * 1e6}))
"""


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def log_metric(tree: Path, calls: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    try:
        out = subprocess.run([PY, "-c", TRACK, str(folder / "p"), str(calls)], check=True,
                             capture_output=True, text=True, env=_env(tree),
                             cwd=folder).stdout  # not this checkout: `-c` imports from cwd
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return json.loads(out)


def runs_ls(tree: Path, project: Path, repeat: int = 5) -> float:
    env = {**_env(tree), "MLOPS_HOME": str(project)}
    code = "import sys; from jupyter_mlops.cli.main import main; sys.exit(main())"
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([PY, "-c", code, "runs", "ls", "--limit", "1000"], check=True,
                       env=env, capture_output=True, cwd=project)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def load_ext(tree: Path) -> float:
    from jupyter_client.manager import start_new_kernel

    # The kernel starts in a folder of its own: `python -m` imports from its cwd first,
    # which would measure this checkout whatever PYTHONPATH says.
    km, kc = start_new_kernel(kernel_name="python3", env=_env(tree),
                              cwd=tempfile.gettempdir())
    try:
        kc.execute_interactive("1", timeout=60, output_hook=lambda msg: None)
        start = time.perf_counter()
        reply = kc.execute_interactive("%load_ext jupyter_mlops", timeout=60,
                                       output_hook=lambda msg: None)
        elapsed = time.perf_counter() - start
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return elapsed


def seeded_project(tree: Path, runs: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-ls-"))
    code = ("import sys; sys.path.insert(0, sys.argv[3]); import jupyter_mlops as m; "
            "from seed import seed_runs; p = m.init(sys.argv[1]); "
            "seed_runs(p.db_path, int(sys.argv[2]))")
    subprocess.run([PY, "-c", code, str(folder), str(runs), str(HERE)], check=True,
                   env=_env(tree), capture_output=True, cwd=folder)
    return folder


def before_after(before: Path, after: Path, rounds: int, calls: int) -> dict:
    trees = {"before": before, "after": after}
    projects = {name: seeded_project(tree, 10_000) for name, tree in trees.items()}
    samples: dict[str, dict[str, list[float]]] = {n: {} for n in trees}
    try:
        for _ in range(rounds):
            for name, tree in trees.items():
                figures = log_metric(tree, calls)
                figures["log_metric_vs_bare"] = figures["log_metric_us"] / \
                    figures["bare_commit_us"]
                figures["runs_ls_10000_s"] = runs_ls(tree, projects[name])
                figures["load_ext_s"] = load_ext(tree)
                for key, value in figures.items():
                    samples[name].setdefault(key, []).append(value)
    finally:
        for folder in projects.values():
            shutil.rmtree(folder, ignore_errors=True)
    result = {name: {k: statistics.median(v) for k, v in figures.items()}
              for name, figures in samples.items()}
    result["after_over_before"] = {k: result["after"][k] / result["before"][k]
                                   for k in result["after"]}
    return result


def postgresql(calls: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import uuid

    from jupyter_mlops.store import Store
    from jupyter_mlops.store.runs import NewRun
    from tests.postgres import fresh_database_url, stop_cluster

    try:
        with Store(fresh_database_url("bench")) as store:
            store.migrate()
            run_id = store.runs.create(NewRun(uuid=uuid.uuid4().hex, name="b",
                                              started_at=time.time(), source_kind="script"))
            samples = []
            for i in range(calls):
                start = time.perf_counter()
                store.runs.log_metrics(run_id, [("loss", float(i), i, time.time())])
                samples.append(time.perf_counter() - start)
            batch = [("loss", float(i), i, time.time()) for i in range(1000)]
            start = time.perf_counter()
            store.runs.log_metrics(run_id, batch)
            batch_s = time.perf_counter() - start
    finally:
        stop_cluster()
    return {"pg_log_metric_us": statistics.median(samples) * 1e6,
            "pg_log_metrics_1000_ms": batch_s * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="checkout of the revision to compare with")
    parser.add_argument("--after", type=Path, default=ROOT,
                        help="checkout of the revision measured (default: this one)")
    parser.add_argument("--sqlalchemy", help="folder SQLAlchemy was pip-installed into")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = {"imports": import_times(args.sqlalchemy),
               "per_call": per_call(args.calls, args.sqlalchemy)}
    print(json.dumps(results, indent=2), flush=True)
    if args.before:
        results["before_after"] = before_after(args.before, args.after, args.rounds,
                                               args.calls)
        print(json.dumps(results["before_after"], indent=2), flush=True)
    results["postgresql"] = postgresql(args.calls)
    print(json.dumps(results["postgresql"], indent=2), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
