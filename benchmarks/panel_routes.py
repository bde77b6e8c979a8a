"""How fast the side panel's routes answer with a big store.

    python benchmarks/panel_routes.py

Seeds 100,000 runs, 10,000 dataset versions (each read by two runs and written by
one) and 10,000 pipeline runs of 3 steps, starts `jupyter server` on 127.0.0.1,
and times 100 GET requests for a page of 50 runs (plain, with a filter, far in),
a page of 50 dataset versions with their runs (the Datasets tab), and the 20
latest pipeline runs with their steps and reports (the Pipelines tab), reporting
p50 and p95. Baseline: Jupyter's own `/api/status` route on the same server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from seed import seed_datasets, seed_pipelines, seed_runs  # noqa: E402

TOKEN = "bench-token"


def timings(url: str, count: int = 100) -> dict:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p95_ms": samples[int(0.95 * count) - 1]}


def main() -> None:
    import jupyter_mlops as mlops

    root = HERE / ".data" / "panel"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    project = mlops.init(root)
    seed_runs(project.db_path, 100_000)
    seed_datasets(project.db_path, 10_000, 100_000)
    seed_pipelines(project.db_path, 10_000)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
         "--allow-root"], cwd=root, env={**os.environ, "MLOPS_HOME": str(root)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        timings(f"{base}/jupyter-mlops/api/runs?limit=50&token={TOKEN}", 10)  # warm
        result = {
            "runs": 100_000,
            "runs_page_50": timings(f"{base}/jupyter-mlops/api/runs?limit=50&token={TOKEN}"),
            "runs_page_50_filtered": timings(
                f"{base}/jupyter-mlops/api/runs?limit=50&filter=metrics.acc%20%3E%200.5"
                f"&token={TOKEN}"),
            "runs_page_50_offset_50000": timings(
                f"{base}/jupyter-mlops/api/runs?limit=50&offset=50000&token={TOKEN}"),
            "datasets": 10_000,
            "datasets_page_50": timings(f"{base}/jupyter-mlops/api/datasets?limit=50"
                                        f"&token={TOKEN}"),
            "pipelines": 10_000,
            "pipelines_latest_20": timings(f"{base}/jupyter-mlops/api/pipelines?limit=20"
                                           f"&token={TOKEN}"),
            "baseline_api_status": timings(f"{base}/api/status?token={TOKEN}"),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(result, indent=2))
    (HERE / "panel-routes-results.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
