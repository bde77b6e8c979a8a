"""Team mode side by side with MLflow: both servers on PostgreSQL, in one run.

    python benchmarks/team.py [--quick] [--json team-results.json]

Starts a throwaway PostgreSQL cluster (tests/postgres.py), `mlops server` on one
database of it and `mlflow server` on another, then measures, each figure
beside MLflow's in the same run (issue 11's speed table):

- `log_metric` per call in a notebook-like client (ours queued; MLflow's sync);
- ingest of 100,000 metrics in batches, committed (ours: logged one by one with
  `log_metric`, and 100 a step with `log_metrics`, then flushed until the server
  acknowledged; MLflow: `log_batch` of 1,000 over REST);
- `search_runs("metrics.acc > 0.5")`, first 1,000 of 100,000 runs (the runs are
  written into each tool's tables with COPY, as data set-up; the search goes
  through each server);
- upload of a 1 GiB artifact, then the same again, beside a raw disk copy.

MLflow runs in its own virtual environment (benchmarks/.data/mlflow-venv, made
on first use with `pip install mlflow psycopg[binary]`): it is never a
dependency of ours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
DATA = HERE / ".data"
sys.path.insert(0, str(ROOT / "tests"))

import postgres  # noqa: E402  (tests/postgres.py: the throwaway cluster)
from mlflow_venv import mlflow_python  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error is an answer
                return
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds} s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then kill after 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


# -- MLflow ------------------------------------------------------------------------------

class MlflowServer:
    def __init__(self, db_url: str, artifacts: Path) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = DATA / "mlflow-server.log"
        python = mlflow_python("psycopg[binary]")
        self.python = python
        self.proc = subprocess.Popen(
            [str(python.parent / "mlflow"), "server", "--backend-store-uri",
             db_url.replace("postgresql://", "postgresql+psycopg://"),
             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        wait_for(self.url + "/health", self.proc, self.log)

    def task(self, *args: str) -> dict:
        done = subprocess.run([str(self.python), str(HERE / "mlflow_worker.py"), self.url,
                               self.db_url, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"mlflow_worker {args} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def stop(self) -> None:
        stop(self.proc)


# -- ours --------------------------------------------------------------------------------

class OurServer:
    def __init__(self, db_url: str, folder: Path) -> None:
        self.db_url = db_url
        shutil.rmtree(folder, ignore_errors=True)  # a fresh home for the fresh database
        folder.mkdir(parents=True)
        home = folder / "home"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        mlops = [sys.executable, "-m", "jupyter_mlops.cli.main", "server", "--home", str(home)]
        # Run in `folder`: `python -m` imports from its cwd first, and the server measured
        # must be the checkout PYTHONPATH names (a before/after comparison).
        subprocess.run([*mlops, "init", "--db", db_url, "--artifacts",
                        str(folder / "artifacts")], check=True, capture_output=True, cwd=folder)
        created = subprocess.run([*mlops, "token", "create", "bench", "--role", "writer"],
                                 check=True, capture_output=True, text=True, cwd=folder)
        self.token = created.stdout.splitlines()[0].strip()
        self.proc = subprocess.Popen([*mlops, "start", "--port", str(self.port)], cwd=folder,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        wait_for(self.url + "/api/v1/version", self.proc, self.log)

    def stop(self) -> None:
        stop(self.proc)


def team_project(server: OurServer, folder: Path):
    """A project in team mode recording into `server`, its tracker fresh."""
    import jupyter_mlops as mlops
    from jupyter_mlops.tracking import Tracker

    os.environ["MLOPS_URL"] = server.url
    os.environ["MLOPS_TOKEN"] = server.token
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    project = mlops.init(folder)
    tracker = Tracker(project)
    mlops.use_tracker(tracker)
    return tracker


def ours_log_metric(server: OurServer, calls: int) -> dict:
    tracker = team_project(server, DATA / "team-log-metric")
    run = tracker.start_run("bench-log-metric")
    for i in range(20):
        run.log_metric("warm", float(i), step=i)
    times = []
    for i in range(calls):
        start = time.perf_counter()
        run.log_metric("loss", 1.0 / (i + 1), step=i)
        times.append(time.perf_counter() - start)
    run.end()
    tracker.close()
    return {"median_us": statistics.median(times) * 1e6, "calls": calls}


def ours_ingest(server: OurServer, total: int, per_call: int = 1) -> dict:
    """`total` metrics logged `per_call` at a time: one by one with `log_metric` (a
    notebook's loop), or `log_metrics` of 100 keys a step (a training loop logging
    its 100 metrics each step; MLflow's side is `log_batch` of 1,000)."""
    import jupyter_mlops as mlops

    tracker = team_project(server, DATA / f"team-ingest-{per_call}")
    run = tracker.start_run("bench-ingest")
    start = time.perf_counter()
    if per_call == 1:
        for i in range(total):
            run.log_metric(f"m{i % 100}", float(i), step=i)
    else:
        keys = [f"m{k}" for k in range(per_call)]
        for step in range(total // per_call):
            run.log_metrics({key: float(step) for key in keys}, step=step)
    run.end()  # waits until the server acknowledged every record
    seconds = time.perf_counter() - start
    assert run.unacknowledged == 0, f"{run.unacknowledged} records not acknowledged"
    tracker.close()
    from jupyter_mlops.store import Store

    with Store(server.db_url) as store:
        stored = len(store.runs.metric_history(run.id))
    assert stored == total, f"{stored} of {total} metrics stored"
    mlops.use_tracker(None)
    return {"metrics_per_s": total / seconds, "seconds": seconds, "metrics": total}


def seed_our_runs(db_url: str, count: int) -> None:
    """`count` finished runs with metric `acc` and param `C`, by COPY (data set-up)."""
    import psycopg

    now = time.time()
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM runs")
        first = cur.fetchone()[0] + 1
        with cur.copy("COPY runs (id, uuid, name, status, started_at, ended_at, heartbeat_at,"
                      " source_kind) FROM STDIN") as copy:
            for i in range(count):
                copy.write_row((first + i, uuid.uuid4().hex, f"r{i}", "finished", now + i,
                                now + i + 1, now + i, "script"))
        with cur.copy("COPY latest_metrics (run_id, key, value, step, timestamp)"
                      " FROM STDIN") as copy:
            for i in range(count):
                copy.write_row((first + i, "acc", (i % 1000) / 1000, None, now + i))
        with cur.copy("COPY metrics (run_id, key, value, step, timestamp) FROM STDIN") as copy:
            for i in range(count):
                copy.write_row((first + i, "acc", (i % 1000) / 1000, None, now + i))
        with cur.copy("COPY params (run_id, key, value) FROM STDIN") as copy:
            for i in range(count):
                copy.write_row((first + i, "C", str((i % 10) / 10)))
        cur.execute("SELECT setval(pg_get_serial_sequence('runs', 'id'), max(id)) FROM runs")
        cur.execute("ANALYZE")


def ours_search(server: OurServer, repeats: int) -> dict:
    from jupyter_mlops.remote.client import Client
    from jupyter_mlops.remote.store import RemoteStore

    times, found = [], 0
    with RemoteStore(Client(server.url, server.token)) as store:
        store.runs.search("metrics.acc > 0.5", limit=10)  # warm the connection
        for _ in range(repeats):
            start = time.perf_counter()
            found = len(store.runs.search("metrics.acc > 0.5", limit=1000))
            times.append(time.perf_counter() - start)
    return {"median_ms": statistics.median(times) * 1e3, "found": found}


def ours_artifact(server: OurServer, path: Path) -> dict:
    tracker = team_project(server, DATA / "team-artifact")
    run = tracker.start_run("bench-artifact")
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        run.log_artifact(path)
        seconds.append(time.perf_counter() - start)
    run.end()
    tracker.close()
    return {"first_s": seconds[0], "again_s": seconds[1]}


def big_file(size_mib: int) -> Path:
    path = DATA / f"team-{size_mib}mib.bin"
    if not path.exists() or path.stat().st_size != size_mib << 20:
        DATA.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            for _ in range(size_mib):
                out.write(os.urandom(1 << 20))
    return path


def raw_copy_seconds(path: Path) -> float:
    target = DATA / "team-copy.bin"
    start = time.perf_counter()
    shutil.copyfile(path, target)
    os.sync()
    seconds = time.perf_counter() - start
    target.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes (1,000 calls, 20,000 metrics, 20,000 runs, "
                             "128 MiB) for a fast look; the README's figures use the full run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    calls, total, runs, mib = ((1000, 20_000, 20_000, 128) if args.quick
                               else (5000, 100_000, 100_000, 1024))
    if reason := postgres.postgres_missing():
        raise SystemExit(f"PostgreSQL is needed: {reason}")
    DATA.mkdir(exist_ok=True)
    results: dict[str, dict] = {}
    ours = mlflow = None
    try:
        ours = OurServer(postgres.fresh_database_url("bench_ours"), DATA / "team-server")
        mlflow = MlflowServer(postgres.fresh_database_url("bench_mlflow"),
                              DATA / "mlflow-artifacts")
        results["log_metric"] = {"ours": ours_log_metric(ours, calls),
                                 "mlflow": mlflow.task("log_metric", str(min(calls, 1000)))}
        results["ingest"] = {"ours": ours_ingest(ours, total),
                             "ours_batched": ours_ingest(ours, total, per_call=100),
                             "mlflow": mlflow.task("log_batch", str(total))}
        seed_our_runs(ours.db_url, runs)
        mlflow.task("seed_runs", str(runs))
        results["search"] = {"ours": ours_search(ours, 5),
                             "mlflow": mlflow.task("search_runs", "5")}
        path = big_file(mib)
        results["artifact"] = {"raw_copy_s": raw_copy_seconds(path),
                               "ours": ours_artifact(ours, path),
                               "mlflow": mlflow.task("log_artifact", str(path)),
                               "mib": mib}
    finally:
        for server in (ours, mlflow):
            if server is not None:
                server.stop()
        postgres.stop_cluster()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def report(results: dict[str, dict]) -> None:
    lm = results["log_metric"]
    print(f"log_metric per call: ours {lm['ours']['median_us']:.1f} us (queued), MLflow "
          f"{lm['mlflow']['median_us']:.0f} us (sync): "
          f"{lm['mlflow']['median_us'] / lm['ours']['median_us']:.0f}x")
    ing = results["ingest"]
    print(f"ingest {ing['ours']['metrics']:,} metrics: ours "
          f"{ing['ours']['metrics_per_s']:,.0f}/s, MLflow {ing['mlflow']['metrics_per_s']:,.0f}/s: "
          f"{ing['ours']['metrics_per_s'] / ing['mlflow']['metrics_per_s']:.1f}x")
    print(f"ingest {ing['ours_batched']['metrics']:,} metrics, 100 per log_metrics call: "
          f"ours {ing['ours_batched']['metrics_per_s']:,.0f}/s: "
          f"{ing['ours_batched']['metrics_per_s'] / ing['mlflow']['metrics_per_s']:.1f}x")
    se = results["search"]
    print(f"search_runs first 1,000: ours {se['ours']['median_ms']:.1f} ms, MLflow "
          f"{se['mlflow']['median_ms']:.1f} ms: "
          f"{se['mlflow']['median_ms'] / se['ours']['median_ms']:.1f}x")
    art = results["artifact"]
    print(f"upload {art['mib']} MiB: raw copy {art['raw_copy_s']:.2f} s; ours first "
          f"{art['ours']['first_s']:.2f} s ({art['raw_copy_s'] / art['ours']['first_s']:.2f}x "
          f"raw), again {art['ours']['again_s']:.3f} s; MLflow first "
          f"{art['mlflow']['first_s']:.2f} s, again {art['mlflow']['again_s']:.2f} s")


if __name__ == "__main__":
    main()
