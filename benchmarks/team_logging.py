"""The team client's logging cost: `log_metric` queued for a team server, per call.

    python benchmarks/team_logging.py [--calls 5000] [--json FILE]

Starts a real `mlops server` (SQLite, tests/team.py) and measures, in one run:

1. `run.log_metric` against the server, one call at a time (the queue's thread
   sends in the background meanwhile); median and p99 per call, then the time
   until the server has acknowledged every record;
2. the same while the server is stopped (batches go to the spool on disk);
3. baseline: `run.log_metric` into the embedded store (committed per call).

Goal (issue 11): median <= 50 us per call queued. benchmarks/team.py sets the
same figure beside MLflow's on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from tests.team import start_team_server  # noqa: E402


def per_call(run, calls: int, key: str) -> list[float]:  # noqa: ANN001
    times = []
    for step in range(calls):
        started = time.perf_counter_ns()
        run.log_metric(key, 1.0 / (step + 1), step)
        times.append((time.perf_counter_ns() - started) / 1000)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median_us": statistics.median(ordered),
            "p99_us": ordered[int(len(ordered) * 0.99) - 1], "calls": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import jupyter_mlops as mlops
    from jupyter_mlops.tracking import Tracker

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = start_team_server(folder / "server")
        try:
            project = mlops.init(folder / "project")
            os.environ["MLOPS_URL"] = server.url
            os.environ["MLOPS_TOKEN"] = server.tokens["writer"]
            tracker = Tracker(project)
            run = tracker.start_run("bench")
            per_call(run, 500, "warm")
            tracker._remote[1].flush(timeout=60)
            results["queued"] = summary(per_call(run, args.calls, "loss"))
            started = time.perf_counter()
            acked = tracker._remote[1].wait_acked(run.uuid, run._recorder.seq, 120)
            results["ack_wait_s"] = time.perf_counter() - started
            results["acked"] = acked
            server.stop()
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results["queued_server_down"] = summary(per_call(run, args.calls, "down"))
                tracker._remote[1].flush()
                server.start()
                started = time.perf_counter()
                results["spool_sent"] = tracker._remote[1].flush(timeout=120)
                results["spool_send_s"] = time.perf_counter() - started
                run.end()
            tracker.close()
            del os.environ["MLOPS_URL"], os.environ["MLOPS_TOKEN"]
            embedded = Tracker(project)
            base = embedded.start_run("baseline")
            per_call(base, 500, "warm")
            results["embedded"] = summary(per_call(base, args.calls, "loss"))
            base.end()
            embedded.close()
        finally:
            server.stop()
    q, d, e = results["queued"], results["queued_server_down"], results["embedded"]
    print(f"log_metric queued for the server: median {q['median_us']:.1f} us, "
          f"p99 {q['p99_us']:.1f} us ({q['calls']} calls); all acknowledged "
          f"{results['ack_wait_s']:.3f} s after the last call")
    print(f"log_metric with the server down (spooled): median {d['median_us']:.1f} us, "
          f"p99 {d['p99_us']:.1f} us; spool sent in {results['spool_send_s']:.2f} s once back")
    print(f"baseline, embedded store (committed per call): median {e['median_us']:.1f} us, "
          f"p99 {e['p99_us']:.1f} us")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
