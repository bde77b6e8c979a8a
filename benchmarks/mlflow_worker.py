"""MLflow's side of benchmarks/team.py, run by the Python of MLflow's own virtual
environment (benchmarks/.data/mlflow-venv, made by team.py; never a dependency of ours).

    mlflow_worker.py TRACKING_URI DB_URL TASK [ARG]

prints one JSON object: the figure measured. TASK is one of
`log_metric N`, `log_batch TOTAL`, `seed_runs N` (writes N runs straight into
MLflow's tables with SQL, as fast data set-up; the search itself goes through
MLflow's server), `search_runs REPEATS`, `log_artifact PATH`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid


def _client():  # noqa: ANN202
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def log_metric(count: int) -> dict:
    import mlflow

    mlflow.set_experiment("bench-log-metric")
    with mlflow.start_run():
        for i in range(20):  # warm the connection
            mlflow.log_metric("warm", float(i), step=i)
        times = []
        for i in range(count):
            start = time.perf_counter()
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
            times.append(time.perf_counter() - start)
    return {"median_us": statistics.median(times) * 1e6, "calls": count}


def log_batch(total: int) -> dict:
    import mlflow
    from mlflow.entities import Metric

    client = _client()
    experiment = mlflow.set_experiment("bench-log-batch")
    run = client.create_run(experiment.experiment_id)
    now = int(time.time() * 1000)
    batch = 1000  # MLflow's limit of metrics per log_batch request
    start = time.perf_counter()
    for first in range(0, total, batch):
        metrics = [Metric(f"m{i % 100}", float(i), now, i) for i in range(first, first + batch)]
        client.log_batch(run.info.run_id, metrics=metrics)
    seconds = time.perf_counter() - start
    client.set_terminated(run.info.run_id)
    return {"metrics_per_s": total / seconds, "seconds": seconds, "metrics": total}


def seed_runs(db_url: str, count: int) -> dict:
    """`count` finished runs with metric `acc` and param `C`, in one experiment, by SQL."""
    import mlflow
    import psycopg

    experiment = mlflow.set_experiment("bench-search")
    experiment_id = int(experiment.experiment_id)
    now = int(time.time() * 1000)
    runs, latest, metrics, params = [], [], [], []
    for i in range(count):
        run_uuid = uuid.uuid4().hex
        acc = (i % 1000) / 1000
        runs.append((run_uuid, f"r{i}", "LOCAL", "bench", "", "bench", "FINISHED", now + i,
                     now + i + 1, "", "active", f"mlflow-artifacts:/{run_uuid}",
                     experiment_id))
        latest.append(("acc", acc, now + i, 0, False, run_uuid))
        metrics.append(("acc", acc, now + i, run_uuid, 0, False))
        params.append(("C", str((i % 10) / 10), run_uuid))
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        with cur.copy("COPY runs (run_uuid, name, source_type, source_name, entry_point_name,"
                      " user_id, status, start_time, end_time, source_version,"
                      " lifecycle_stage, artifact_uri, experiment_id) FROM STDIN") as copy:
            for row in runs:
                copy.write_row(row)
        with cur.copy("COPY latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
                      " FROM STDIN") as copy:
            for row in latest:
                copy.write_row(row)
        with cur.copy("COPY metrics (key, value, timestamp, run_uuid, step, is_nan)"
                      " FROM STDIN") as copy:
            for row in metrics:
                copy.write_row(row)
        with cur.copy("COPY params (key, value, run_uuid) FROM STDIN") as copy:
            for row in params:
                copy.write_row(row)
        cur.execute("ANALYZE")
    return {"runs": count, "experiment_id": experiment_id}


def search_runs(repeats: int) -> dict:
    import mlflow

    client = _client()
    experiment = mlflow.get_experiment_by_name("bench-search")
    times, found = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        page = client.search_runs([experiment.experiment_id], "metrics.acc > 0.5",
                                  max_results=1000, order_by=["attributes.start_time DESC"])
        times.append(time.perf_counter() - start)
        found = len(page)
    return {"median_ms": statistics.median(times) * 1e3, "found": found}


def log_artifact(path: str) -> dict:
    import mlflow

    mlflow.set_experiment("bench-artifact")
    seconds = []
    with mlflow.start_run():
        for _ in range(2):
            start = time.perf_counter()
            mlflow.log_artifact(path)
            seconds.append(time.perf_counter() - start)
    return {"first_s": seconds[0], "again_s": seconds[1]}


def main() -> None:
    import mlflow

    tracking_uri, db_url, task = sys.argv[1:4]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    mlflow.set_tracking_uri(tracking_uri)
    if task == "log_metric":
        result = log_metric(int(arg or 1000))
    elif task == "log_batch":
        result = log_batch(int(arg or 100_000))
    elif task == "seed_runs":
        result = seed_runs(db_url, int(arg or 100_000))
    elif task == "search_runs":
        result = search_runs(int(arg or 5))
    elif task == "log_artifact":
        result = log_artifact(str(arg))
    else:
        raise SystemExit(f"unknown task {task!r}")
    result["mlflow"] = mlflow.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
