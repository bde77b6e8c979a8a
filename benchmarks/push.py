"""`mlops push`: how long moving an embedded project to a team server takes, and again.

    python benchmarks/push.py [--runs 1000] [--points 100] [--audit 2000] [--json FILE]

Builds a project (RUNS runs of POINTS metric points each, AUDIT audit rows),
starts `mlops server` on a throwaway PostgreSQL database (tests/postgres.py),
and times the first push (everything sent) and the second (everything
skipped), each as `remote.push.push` does it for `mlops push URL`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import postgres  # noqa: E402
from tests.team import start_team_server  # noqa: E402


def build_project(folder: Path, runs: int, points: int, audit_rows: int):
    import os

    import jupyter_mlops as mlops
    from jupyter_mlops.store import Store, audit
    from jupyter_mlops.tracking import Tracker

    project = mlops.init(folder)
    os.environ["MLOPS_HOME"] = str(folder)
    tracker = Tracker(project)
    mlops.use_tracker(tracker)
    for number in range(runs):
        with mlops.start_run(name=f"run-{number}"):
            mlops.log_params({"n": number})
            for step in range(points):
                mlops.log_metric("loss", 1 / (step + 1), step=step)
    tracker.close()
    with Store.for_project(project) as store, store.transaction() as conn:
        for number in range(audit_rows):
            audit.append(conn, actor="bench", action="note", subject=f"row:{number}",
                         payload={"n": number})
    return project


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--audit", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if reason := postgres.postgres_missing():
        sys.exit(f"no PostgreSQL: {reason}")
    from jupyter_mlops.remote.client import Client
    from jupyter_mlops.remote.push import push

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "project").mkdir()
        started = time.perf_counter()
        project = build_project(folder / "project", args.runs, args.points, args.audit)
        built = time.perf_counter() - started
        server = start_team_server(folder / "server", postgres.fresh_database_url("push"))
        try:
            client = Client(server.url, server.tokens["admin"])
            timings = {}
            for label in ("first", "again"):
                started = time.perf_counter()
                report = push(project, client)
                timings[label] = time.perf_counter() - started
                print(f"{label}: {timings[label]:.2f} s: {report.summary()}")
            client.close()
        finally:
            server.stop()
            postgres.stop_cluster()
    rows = args.runs * (1 + args.points) + args.audit
    result = {"runs": args.runs, "metric_points": args.runs * args.points,
              "audit_rows": args.audit, "build_seconds": round(built, 2),
              "first_push_seconds": round(timings["first"], 2),
              "second_push_seconds": round(timings["again"], 2),
              "rows_per_second_first": round(rows / timings["first"])}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
