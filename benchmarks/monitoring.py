"""Speed of the scoring service's logging and of the drift report.

    python benchmarks/monitoring.py [service] [report] [layout]   (default: all three)

1. `service`: `mlops serve` with logging on against the same service with
   `--no-log`: client-side p50 and p95 latency and throughput under a closed
   loop of concurrent keep-alive clients on loopback, alternating the two.
2. `report`: a monitoring report (drift of 20 features and the output,
   latency, error rate, timeline) over 1,000,000 logged rows in 10 files.
3. `layout`: the same report over 1,000,000 rows laid out as the service
   writes them (one file per second of ~12 rows: 83,334 files over 23 hours,
   a tenth of the rows labelled), before and after `compact`, and the
   compaction itself. All data is generated here; nothing is downloaded.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE / ".data"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_with_model():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import jupyter_mlops as mlops
    from jupyter_mlops.store import Store

    root = DATA / "serving"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    project = mlops.init(root)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    tracker = mlops.Tracker(project)
    with tracker.start_run("bench") as run:
        run.log_model(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y),
                      name="cancer", input_example=X)
    tracker.close()
    with Store(project.db_path) as store:
        store.releases.set_alias("cancer", "production", 1, actor="bench", reason="bench")
    return project, [{k: float(v) for k, v in X.iloc[i].items()} for i in range(len(X))]


def load(port: int, rows: list[dict], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, i = [], offset
        while time.monotonic() < deadline:
            body = json.dumps({"instances": [rows[i % len(rows)]]})
            start = time.perf_counter()
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            mine.append((time.perf_counter() - start) * 1000)
            assert response.status == 200
            i += clients
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {"requests": len(latencies), "per_second": len(latencies) / seconds,
            "p50_ms": statistics.median(latencies),
            "p95_ms": latencies[int(0.95 * len(latencies))]}


def serve(project, log: bool) -> tuple[subprocess.Popen, int]:
    port = _port()
    args = [sys.executable, "-m", "jupyter_mlops.cli.main", "serve", "cancer@production",
            "--port", str(port)] + ([] if log else ["--no-log"])
    proc = subprocess.Popen(args, cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, port


def bench_service(clients: int = 4, seconds: float = 8.0, rounds: int = 3) -> dict:
    project, rows = project_with_model()
    results: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(rounds):
        for mode in ("off", "on"):
            proc, port = serve(project, log=mode == "on")
            load(port, rows, clients, 1.0)  # warm up
            results[mode].append(load(port, rows, clients, seconds))
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
    summary = {mode: {"p50_ms": statistics.median(r["p50_ms"] for r in runs),
                      "p95_ms": statistics.median(r["p95_ms"] for r in runs),
                      "per_second": statistics.median(r["per_second"] for r in runs)}
               for mode, runs in results.items()}
    summary["p50_ratio_on_over_off"] = summary["on"]["p50_ms"] / summary["off"]["p50_ms"]
    summary["clients"] = clients
    return summary


def bench_report(rows: int = 1_000_000, features: int = 20) -> dict:
    import numpy as np
    import pandas as pd

    import jupyter_mlops as mlops
    from jupyter_mlops.monitoring.predlog import PredictionLog, prediction_frame
    from jupyter_mlops.monitoring.profile import build_profile
    from jupyter_mlops.monitoring.report import build_report
    from jupyter_mlops.store import Store

    root = DATA / "report"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    project = mlops.init(root)
    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(features)]
    reference = pd.DataFrame(rng.normal(0, 1, (50_000, features)), columns=columns)
    with Store(project.db_path) as store:
        store.predictions.save_profile("big", 1, build_profile(reference,
                                                               rng.uniform(0, 1, 50_000)))
        log = PredictionLog(project)
        for _ in range(10):
            part = pd.DataFrame(rng.normal(0, 1, (rows // 10, features)), columns=columns)
            log.write(store, "big", prediction_frame(part, rng.uniform(0, 1, len(part)),
                                                     version=1,
                                                     latency_ms=rng.uniform(1, 5, len(part))),
                      "batch")
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            report = build_report(project, store, "big")
            timings.append(time.perf_counter() - start)
    assert report.rows == rows and len(report.versions[0].drift) == features + 1
    return {"rows": rows, "features": features, "report_s": statistics.median(timings)}


def _service_files(project, store, name: str, rows: int, per_file: int,
                   features: int, start: float) -> list[str]:
    """Write `rows` rows as the service does: one Parquet file per second of `per_file`
    rows (times spread within the second), each indexed on its own; returns the ids."""
    import numpy as np
    import pyarrow as pa

    from jupyter_mlops.monitoring.predlog import PredictionLog

    rng = np.random.default_rng(1)
    ids = [f"{k:032x}" for k in rng.integers(0, 2**62, rows, dtype=np.int64)]
    files = -(-rows // per_file)
    within = np.sort(rng.uniform(0, 1, (files, per_file)), axis=1).ravel()[:rows]
    at = start + np.arange(rows) // per_file + within
    columns = {"request_id": pa.array(ids), "at": at,
               "version": np.ones(rows, dtype="int64"),
               "latency_ms": rng.uniform(1, 5, rows),
               "status": pa.array(np.where(rng.uniform(0, 1, rows) < 0.01, "invalid", "ok")),
               "error": pa.array([""] * rows), "output": rng.uniform(0, 1, rows)}
    for i in range(features):
        columns[f"in.f{i}"] = rng.normal(0, 1, rows)
    table = pa.table(columns)
    log = PredictionLog(project)
    for offset in range(0, rows, per_file):
        log.write_table(store, name, table.slice(offset, per_file), "service")
    return ids


def bench_service_layout(rows: int = 1_000_000, per_file: int = 12,
                         features: int = 20) -> dict:
    import dataclasses
    import math

    import numpy as np
    import pandas as pd

    import jupyter_mlops as mlops
    from jupyter_mlops.monitoring.predlog import PredictionLog
    from jupyter_mlops.monitoring.profile import build_profile
    from jupyter_mlops.monitoring.report import build_report
    from jupyter_mlops.store import Store

    root = DATA / "report-service"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    project = mlops.init(root)
    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(features)]
    reference = pd.DataFrame(rng.normal(0, 1, (50_000, features)), columns=columns)
    # Every hour of the traffic has ended: all of it can be compacted.
    start = math.floor(time.time() / 3600) * 3600 - 3600 - math.ceil(rows / per_file)
    log = PredictionLog(project)
    with Store(project.db_path) as store:
        store.predictions.save_profile("live", 1, build_profile(
            reference, rng.uniform(0, 1, 50_000),
            {"kind": "classification", "output": "probability", "classes": [0, 1]}))
        began = time.perf_counter()
        ids = _service_files(project, store, "live", rows, per_file, features, start)
        generate_s = time.perf_counter() - began
        files_before = len(store.predictions.batches("live"))
        labelled = rng.choice(len(ids), len(ids) // 10, replace=False)
        labels = pd.DataFrame({"request_id": [ids[i] for i in labelled],
                               "label": rng.integers(0, 2, len(labelled)).astype(float)})
        began = time.perf_counter()
        upload = log.write_labels(store, "live", labels)
        labels_before_s = time.perf_counter() - began

        def timed(runs: int) -> tuple[float, object]:
            timings, report = [], None
            for _ in range(runs):
                began = time.perf_counter()
                report = build_report(project, store, "live")
                timings.append(time.perf_counter() - began)
            return statistics.median(timings), report

        before_s, before = timed(1)
        began = time.perf_counter()
        result = log.compact(store, "live")
        compact_s = time.perf_counter() - began
        files_after = len(store.predictions.batches("live"))
        after_s, after = timed(3)
        began = time.perf_counter()
        log.write_labels(store, "live", labels.iloc[:1000])  # re-sent: no change
        labels_after_s = time.perf_counter() - began
    same = dataclasses.replace(before, until=0.0) == dataclasses.replace(after, until=0.0)
    assert same and after.rows == rows and upload.added == len(labelled)
    assert result.rows == rows and not result.skipped
    return {"rows": rows, "rows_per_file": per_file, "features": features,
            "labelled": len(labelled), "generate_s": generate_s,
            "files_before": files_before, "report_before_s": before_s,
            "compact_s": compact_s, "files_after": files_after, "report_after_s": after_s,
            "reports_identical": same, "labels_upload_before_s": labels_before_s,
            "labels_upload_after_s": labels_after_s}


def main() -> None:
    parts = {"service": bench_service, "report": bench_report, "layout": bench_service_layout}
    chosen = sys.argv[1:] or list(parts)
    unknown = [c for c in chosen if c not in parts]
    if unknown:
        sys.exit(f"unknown part {unknown[0]!r}: choose from {', '.join(parts)}")
    path = HERE / "monitoring-results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for part in chosen:
        results[part] = parts[part]()
        print(json.dumps({part: results[part]}, indent=2), flush=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
