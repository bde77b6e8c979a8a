"""How fast the dashboard's pages paint with a big store.

    python benchmarks/dashboard.py [--against REV] [--rounds 5]

Seeds a project with 10,000 runs, 1,000 model versions, 20 pending release
requests and 1,000,000 logged predictions of one model (20 features, in 10
files), starts `mlops dashboard`, signs in with Playwright in Debian's chromium,
and times, from navigation:

- to the first release card being visible, the pending-releases page;
- to the first chart (latency p95 over time) being drawn, the monitoring page.

Baselines: the static login page in the same browser, the monitoring report
alone (`build_report`) in this process, and with `--against REV` the same pages
of an older revision's dashboard, served beside this one and timed alternately.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

DATA = Path(__file__).parent / ".data"


def seed(root: Path, runs: int = 10_000, versions: int = 1_000, pending: int = 20) -> None:
    import jupyter_mlops as mlops
    from jupyter_mlops.store import Store

    project = mlops.init(root)
    conn = sqlite3.connect(project.db_path, isolation_level=None)
    now = time.time()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (id, uuid, name, status, started_at, ended_at, heartbeat_at,"
        " source_kind, user) VALUES (?, ?, ?, 'finished', ?, ?, ?, 'script', 'bench')",
        ((i, uuid.uuid4().hex, f"run-{i}", now - i, now - i + 5, now) for i in range(1, runs + 1)))
    conn.executemany("INSERT INTO latest_metrics VALUES (?, 'acc', ?, NULL, ?)",
                     ((i, (i % 100) / 100, now) for i in range(1, runs + 1)))
    conn.execute("INSERT INTO artifacts VALUES (?, 1, ?)", ("blake3:" + "1" * 64, now))
    conn.executemany(
        "INSERT INTO model_versions (name, version, run_id, digest, flavor, created_at, "
        "input_datasets) VALUES (?, ?, ?, ?, 'sklearn-skops', ?, '[]')",
        ((f"model-{i % 50}", i // 50 + 1, i + 1, "blake3:" + "1" * 64, now)
         for i in range(versions)))
    conn.execute("COMMIT")
    conn.close()
    with Store(project.db_path) as store:
        for i in range(pending):
            store.releases.request(
                f"model-{i}", 2, "production", requester="bob", reason=f"release {i}",
                evidence={"gates": [{"gate": "accuracy >= 0.9", "passed": True,
                                     "reason": "0.95 >= 0.9", "against_version": None}],
                          "gates_passed": True,
                          "candidate": {"ref": f"model-{i}:2", "metrics": {"accuracy": 0.95}},
                          "current": None})


def seed_predictions(root: Path, rows: int = 1_000_000, features: int = 20) -> None:
    """`rows` predictions of model `big` (version 1, released to production), a tenth of
    them drifted on one feature, in 10 files as batch scoring writes them."""
    import numpy as np
    import pandas as pd

    from jupyter_mlops.monitoring.predlog import PredictionLog, prediction_frame
    from jupyter_mlops.monitoring.profile import build_profile
    from jupyter_mlops.project import find_project
    from jupyter_mlops.store import Store

    project = find_project(root)
    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(features)]
    reference = pd.DataFrame(rng.normal(0, 1, (50_000, features)), columns=columns)
    now = time.time()
    with Store(project.db_path) as store:
        store.predictions.save_profile("big", 1, build_profile(reference,
                                                               rng.uniform(0, 1, 50_000)))
        log = PredictionLog(project)
        for part_index in range(10):
            part = pd.DataFrame(rng.normal(0, 1, (rows // 10, features)), columns=columns)
            if part_index == 9:
                part["f3"] += 1.0  # the last tenth drifts
            frame = prediction_frame(part, rng.uniform(0, 1, len(part)), version=1,
                                     latency_ms=rng.uniform(1, 5, len(part)))
            frame["at"] = now - 86_000 + part_index * 8_600 + np.arange(len(part)) * 0.0086
            log.write(store, "big", frame, "batch")


def time_report() -> float:
    """The monitoring report over the seeded log, alone, median of 3."""
    from jupyter_mlops.monitoring.report import build_report
    from jupyter_mlops.project import find_project
    from jupyter_mlops.store import Store

    project = find_project(DATA / "dashboard")
    timings = []
    with Store(project.db_path) as store:
        for _ in range(3):
            start = time.perf_counter()
            build_report(project, store, "big")
            timings.append(time.perf_counter() - start)
    return statistics.median(timings)


FIRST_CHART = ("() => typeof Bokeh !== 'undefined' && Bokeh.documents.length > 0 && "
               "[...Bokeh.documents[0].all_models].some(m => m.type == 'Title' && "
               "m.text.startsWith('latency p95'))")


def start_server(root: Path, creds: Path, tree: Path | None = None
                 ) -> tuple[subprocess.Popen, str]:
    """`mlops dashboard` on a free port, of this checkout or (`tree`) another one."""
    import os

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    server = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "dashboard",
                               "--port", str(port), "--auth", str(creds)], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/login", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return server, base


def signed_in(browser, base: str, monitoring: bool):  # noqa: ANN001, ANN201
    """A page of its own browser context (its own cookies: both servers are on
    127.0.0.1, and cookies don't tell ports apart), signed in and warmed up."""
    page = browser.new_context().new_page()
    page.goto(base + "/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice-password")
    page.click("#login")
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto(base + "/releases")
    page.get_by_text("#1: model-0:2").wait_for()  # warm: first session imports
    if not monitoring:
        return page
    page.goto(base + "/monitoring")  # warm: the first report imports scipy, pyarrow
    page.wait_for_function(FIRST_CHART, timeout=120_000)
    page.get_by_text("most severe first").wait_for(timeout=120_000)  # all drawn
    return page


def time_releases(page, base: str) -> tuple[float, float]:  # noqa: ANN001
    """(static login page, pending-releases page to its last card), from navigation."""
    start = time.perf_counter()
    page.goto(base + "/login")
    page.get_by_text("Sign in to review").wait_for()
    login = time.perf_counter() - start
    start = time.perf_counter()
    page.goto(base + "/releases")
    page.get_by_text("#20: model-19:2").wait_for()
    return login, time.perf_counter() - start


def time_monitoring(page, base: str) -> float:  # noqa: ANN001
    """From navigation to the first chart drawn, then waits for the whole page (its
    drift section is measured after the first paint, on a thread of the server), so
    that the next figure times a server at rest."""
    start = time.perf_counter()
    page.goto(base + "/monitoring")
    page.wait_for_function(FIRST_CHART, timeout=120_000)
    page.locator(".bk-Figure").first.wait_for()
    took = time.perf_counter() - start
    page.get_by_text("most severe first").wait_for(timeout=120_000)
    return took


def main() -> None:
    import argparse

    from playwright.sync_api import sync_playwright

    from jupyter_mlops.dashboard.credentials import add_user

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", metavar="REV",
                        help="also time REV's dashboard (a git worktree, see ab.py), "
                             "alternating with this checkout's, on the same data")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = DATA / "dashboard"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    seed(root)
    seed_predictions(root)
    creds = root / "credentials.json"
    add_user(creds, "alice", "alice-password")
    config = root / ".mlops" / "config.toml"  # roles live in the project config only
    config.write_text(config.read_text() + '\n[users.alice]\nroles = ["reviewer"]\n')
    sides = {"ours": None}
    if args.against:
        from ab import worktree

        sides[args.against] = worktree(args.against)
    servers = {side: start_server(root, creds, tree) for side, tree in sides.items()}
    timings: dict[str, dict[str, list[float]]] = {
        side: {"login": [], "releases": [], "monitoring": []} for side in sides}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=["--no-sandbox"])
            # The older side's monitoring page is not timed: before issue 15 it had no
            # titled chart to wait for.
            pages = {side: signed_in(browser, base, side == "ours")
                     for side, (_, base) in servers.items()}
            for _ in range(args.rounds):  # the sides alternate: both see the same load
                for side, (_, base) in servers.items():
                    login, releases = time_releases(pages[side], base)
                    timings[side]["login"].append(login)
                    timings[side]["releases"].append(releases)
                    if side == "ours":
                        timings[side]["monitoring"].append(time_monitoring(pages[side], base))
            browser.close()
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(timeout=30)
    ours = timings["ours"]
    result = {"runs": 10_000, "model_versions": 1_000, "pending_requests": 20,
              "predictions": 1_000_000, "features": 20,
              "releases_page_s": statistics.median(ours["releases"]),
              "monitoring_first_chart_s": statistics.median(ours["monitoring"]),
              "monitoring_first_chart_all_s": ours["monitoring"],
              "report_alone_s": time_report(),
              "login_page_s": statistics.median(ours["login"])}
    if args.against:
        theirs = timings[args.against]
        result["against"] = {
            "rev": args.against,
            "releases_page_s": statistics.median(theirs["releases"]),
            "login_page_s": statistics.median(theirs["login"]),
            "releases_ratio": statistics.median(ours["releases"])
            / statistics.median(theirs["releases"])}
    print(json.dumps(result, indent=2))
    (Path(__file__).parent / "dashboard-results.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
