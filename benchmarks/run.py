"""Speed figures of the tracking core, each beside a baseline measured in the same run.

    python benchmarks/run.py [--quick] [--json results.json]

Machines here are shared and noisy, so every figure is reported with a
baseline taken in the same process (or kernel) moments before: compare ratios
between machines, not seconds. Uses a throwaway project under benchmarks/.data/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from seed import seed_runs  # noqa: E402

DATA = HERE / ".data"


def median_time(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def fresh_project(name: str):
    import jupyter_mlops as mlops

    root = DATA / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return mlops.init(root)


def bench_log_metric(calls: int) -> dict:
    import sqlite3

    from jupyter_mlops.tracking import Tracker

    project = fresh_project("metrics")
    # Baseline: a bare SQLite WAL commit of one row, synchronous=NORMAL.
    bare = sqlite3.connect(DATA / "metrics" / "bare.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode=WAL")
    bare.execute("PRAGMA synchronous=NORMAL")
    bare.execute("CREATE TABLE m (run INTEGER, key TEXT, value REAL, step INTEGER, ts REAL)")

    def bare_commit(i: int) -> None:
        bare.execute("BEGIN IMMEDIATE")
        bare.execute("INSERT INTO m VALUES (1, 'loss', ?, ?, ?)", (float(i), i, time.time()))
        bare.execute("COMMIT")

    tracker = Tracker(project)
    run = tracker.start_run("bench")
    per_call, baseline = [], []
    for i in range(calls):
        start = time.perf_counter()
        bare_commit(i)
        baseline.append(time.perf_counter() - start)
        start = time.perf_counter()
        run.log_metric("loss", float(i), step=i)
        per_call.append(time.perf_counter() - start)

    batch = {f"m{i}": float(i) for i in range(1000)}
    rows = [(1, f"m{i}", float(i), None, time.time()) for i in range(1000)]

    def bare_batch() -> None:
        bare.execute("BEGIN IMMEDIATE")
        bare.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?)", rows)
        bare.execute("COMMIT")

    batch_baseline = median_time(bare_batch, 20)
    batch_time = median_time(lambda: run.log_metrics(batch), 20)
    run.end()
    tracker.close()
    bare.close()
    return {
        "log_metric_median_us": statistics.median(per_call) * 1e6,
        "bare_commit_median_us": statistics.median(baseline) * 1e6,
        "log_metric_vs_bare": statistics.median(per_call) / statistics.median(baseline),
        "log_metrics_1000_ms": batch_time * 1e3,
        "bare_batch_1000_ms": batch_baseline * 1e3,
    }


def bench_file_digest(size_mib: int) -> dict:
    import blake3

    from jupyter_mlops.hashing import StatCache, digest_file

    DATA.mkdir(exist_ok=True)
    path = DATA / f"blob-{size_mib}m.bin"
    if not path.exists() or path.stat().st_size != size_mib << 20:
        with open(path, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
        old = time.time() - 10  # not "racy": old enough for the stat cache
        os.utime(path, (old, old))
    path.read_bytes()  # into the page cache

    def raw() -> str:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
        return hasher.hexdigest()

    raw_s = median_time(raw, 5)
    ours_s = median_time(lambda: digest_file(path), 5)
    cache = StatCache(DATA / "stat-cache.db")
    digest_file(path, cache)  # fill
    cached_s = median_time(lambda: digest_file(path, cache), 50)
    cache.close()
    gb = (size_mib << 20) / 1e9
    return {
        "file_mib": size_mib,
        "raw_blake3_gb_s": gb / raw_s,
        "digest_file_gb_s": gb / ours_s,
        "digest_vs_raw": raw_s / ours_s,
        "unchanged_file_ms": cached_s * 1e3,
    }


FRAME_CODE = """
import numpy as np, pandas as pd
def frame(n):
    rng = np.random.default_rng(0)
    cols = {f"f{i}": rng.random(n) for i in range(4)}
    cols.update({f"i{i}": rng.integers(0, 1000, n) for i in range(3)})
    words = np.array(["alpha", "beta", "gamma", "delta"], dtype=object)
    cols.update({f"s{i}": words[rng.integers(0, 4, n)] for i in range(3)})
    return pd.DataFrame(cols).astype({f"s{i}": "str" for i in range(3)})
def wide_frame(n):
    # The first figure's frame plus what real tables hold: a datetime column and a
    # string column of varied values (ids, one in ten missing).
    df = frame(n)
    rng = np.random.default_rng(1)
    seconds = rng.integers(0, 365 * 86400, n)
    df["t"] = np.datetime64("2024-01-01", "ns") + seconds.astype("timedelta64[s]")
    ids = np.char.add("user-", rng.integers(0, n, n).astype(str)).astype(object)
    ids[rng.random(n) < 0.1] = None
    df["user"] = pd.Series(ids, dtype="str")
    return df
"""


def bench_dataframe(rows: int) -> dict:
    """digest_table of the 10-column frame (the first figure) and of the same frame
    with a datetime and a string column added, beside pandas' own row hashing."""
    import pandas as pd

    from jupyter_mlops.table_digests import digest_table

    namespace: dict = {}
    exec(FRAME_CODE, namespace)
    narrow = namespace["frame"](rows)
    df = namespace["wide_frame"](rows)
    baseline = median_time(lambda: pd.util.hash_pandas_object(df), 3)
    narrow_s = median_time(lambda: digest_table(narrow), 7)
    ours = median_time(lambda: digest_table(df), 7)
    digest = digest_table(df)
    code = (FRAME_CODE + "from jupyter_mlops.table_digests import digest_table\n"
            f"print(digest_table(wide_frame({rows})))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": "7"}).stdout.strip()
    return {
        "rows": rows, "columns": df.shape[1], "dtypes": sorted({str(t) for t in df.dtypes}),
        "digest_s": ours, "digest_10_columns_s": narrow_s, "added_columns_cost": ours / narrow_s,
        "hash_pandas_object_s": baseline, "speedup": baseline / ours,
        "same_digest_in_new_process": other == digest,
    }


def bench_load_ext() -> dict:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        def timed(code: str) -> float:
            start = time.perf_counter()
            reply = kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
            elapsed = time.perf_counter() - start
            assert reply["content"]["status"] == "ok", reply["content"]
            return elapsed

        timed("1")
        baseline = timed("%load_ext autoreload")
        ours = timed("%load_ext jupyter_mlops")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return {"load_ext_s": ours, "load_ext_autoreload_s": baseline}


def bench_search(runs: int) -> dict:
    from jupyter_mlops.store import Store

    project = fresh_project("search")
    db = project.db_path
    seed_runs(db, runs)
    with Store(db) as store:
        baseline = median_time(lambda: store._conn.execute(
            "SELECT * FROM runs ORDER BY id DESC LIMIT 1000").fetchall(), 20)
        store.runs.search("metrics.acc > 0.5", limit=1000)  # warm
        ours = median_time(lambda: store.runs.search("metrics.acc > 0.5", limit=1000), 20)
        matches = len(store.runs.search("metrics.acc > 0.5", limit=1000))
        combined = median_time(lambda: store.runs.search(
            "metrics.acc > 0.5 and params.C = '0.5'", limit=1000), 20)
        # Worst case: 0.5% of runs match, so the newest-first walk reads every run.
        selective = median_time(lambda: store.runs.search("metrics.acc > 0.995", limit=1000),
                                10)
    return {"runs": runs, "matches": matches, "search_ms": ours * 1e3,
            "search_with_param_ms": combined * 1e3, "search_selective_ms": selective * 1e3,
            "bare_select_1000_ms": baseline * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    results = {}
    for name, run in [
        ("log_metric", lambda: bench_log_metric(500 if args.quick else 5000)),
        ("file_digest", lambda: bench_file_digest(64 if args.quick else 1024)),
        ("dataframe", lambda: bench_dataframe(100_000 if args.quick else 1_000_000)),
        ("load_ext", bench_load_ext),
        ("search", lambda: bench_search(10_000 if args.quick else 100_000)),
    ]:
        print(f"{name} ...", file=sys.stderr, flush=True)
        results[name] = run()
        print(json.dumps({name: results[name]}, indent=2), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
