"""`log_metric` from a JupyterHub user's kernel: with the Hub token the user's server
already has, beside the same call with the team server's own token, in one run.

    python benchmarks/hub.py [--calls 5000] [--rounds 3] [--json hub-results.json]

Starts a real Hub with the team server as its managed service (tests/hub.py; needs
`configurable-http-proxy` on PATH), starts bob's single-user server, and in one
kernel of his times `log_metric` (median per call, queued) in alternating rounds:
a run recorded with his server's `JUPYTERHUB_API_TOKEN` (resolved by the service
through HubAuth's cache), then one with a server token in `MLOPS_TOKEN`. Issue 12's
goal: the Hub token within 10 % of the server token.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KERNEL = """
import os, statistics, time
%cd {project}
import jupyter_mlops as mlops
from jupyter_mlops.tracking import Tracker
def timed(label, token):
    if token is None:
        os.environ.pop("MLOPS_TOKEN", None)
    else:
        os.environ["MLOPS_TOKEN"] = token
    tracker = Tracker()
    run = tracker.start_run(label)
    times = []
    for i in range({calls}):
        start = time.perf_counter()
        run.log_metric("loss", 1.0 / (i + 1), step=i)
        times.append(time.perf_counter() - start)
    run.end()
    assert run.unacknowledged == 0
    tracker.close()
    return statistics.median(times) * 1e6
for round in range({rounds}):
    print("HUB", timed("hub-token", None))
    print("SERVER", timed("server-token", {server_token!r}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import jupyter_mlops as mlops
    from jupyter_mlops.teamserver.home import ServerHome
    from tests.hub import start_hub

    with tempfile.TemporaryDirectory(prefix="mlops-hub-bench-") as folder:
        hub = start_hub(Path(folder))
        try:
            with ServerHome(hub.team_home).open_store() as store:
                _, server_token = store.tokens.create("bench", ["writer"])
            home = hub.start_server("bob")
            project = mlops.init(home / "bench")
            (project.home / "config.toml").write_text(
                f'[store]\nurl = "{hub.service_url}"\n')
            out = hub.execute("bob", hub.token_for("bob"), KERNEL.format(
                project=project.root, calls=args.calls, rounds=args.rounds,
                server_token=server_token), timeout=600)
        finally:
            hub.stop()
    hub_us = [float(x) for x in re.findall(r"HUB ([0-9.]+)", out)]
    server_us = [float(x) for x in re.findall(r"SERVER ([0-9.]+)", out)]
    results = {"calls": args.calls, "hub_token_us": hub_us, "server_token_us": server_us,
               "ratio": statistics.median(hub_us) / statistics.median(server_us)}
    print(f"log_metric from bob's kernel, median per call over {args.calls} calls, "
          f"{args.rounds} alternating rounds: Hub token "
          f"{', '.join(f'{x:.2f}' for x in hub_us)} us; server token "
          f"{', '.join(f'{x:.2f}' for x in server_us)} us; ratio "
          f"{results['ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
