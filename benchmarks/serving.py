"""`mlops serve` beside `mlflow models serve`, in alternating rounds of one run.

    python benchmarks/serving.py [--rounds 3] [--seconds 3] [--only ours-log,ours-nolog,...]

The same breast-cancer pipeline (StandardScaler + LogisticRegression, fitted on
the same data) is served by each server in turn, started fresh each round:

- `ours-log`: `mlops serve` as it starts by default (the prediction log on, one
  serving process per core);
- `ours-nolog`: `mlops serve --no-log`;
- `ours-w1` / `ours-w2`: logging on, `--workers 1` / `--workers 2`;
- `mlflow`: `mlflow models serve --env-manager local` (uvicorn), run by the
  Python of MLflow's own virtual environment (benchmarks/.data/mlflow-venv,
  made on first use; never a dependency of ours).

Figures per server: the time from the command to the first 200 on /health;
1 client sending 1-row and 100-row requests (p50, p99, and the CPU time the
server's processes spent per request); 4 clients sending 1-row requests
(requests per second, and how many cores the server's processes kept busy:
on a machine shared with other work, a server can't use cores others hold).
Clients are keep-alive sockets on loopback sending prebuilt bytes, so that the
client costs little beside the server. Before the rounds, the model's own
`predict_proba` is timed in process on the same single row (as a one-row
DataFrame and as an array), the baseline the service's overhead is measured
against. Results go to
benchmarks/serving-results.json; medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from mlflow_venv import MLFLOW_VENV, mlflow_python, sklearn_pin

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
MLFLOW_MODEL = DATA / "serving-mlflow-model"
SERVERS = ("ours-log", "ours-nolog", "ours-w1", "ours-w2", "mlflow")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def training_data():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True, as_frame=True)


def fitted_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = training_data()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


def our_project():
    """A fresh project with the pipeline as cancer v1, alias production."""
    import shutil

    import jupyter_mlops as mlops
    from jupyter_mlops.store import Store

    root = DATA / "serving"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    project = mlops.init(root)
    X, _ = training_data()
    tracker = mlops.Tracker(project)
    with tracker.start_run("bench") as run:
        run.log_model(fitted_pipeline(), name="cancer", input_example=X)
    tracker.close()
    with Store(project.db_path) as store:
        store.releases.set_alias("cancer", "production", 1, actor="bench", reason="bench")
    return project


def mlflow_side_save(path: str) -> None:
    """Run by MLflow's Python: save the same pipeline as an MLflow model at `path`."""
    import shutil

    import mlflow

    shutil.rmtree(path, ignore_errors=True)
    X, _ = training_data()
    mlflow.sklearn.save_model(fitted_pipeline(), path, input_example=X.iloc[:2])
    print(json.dumps({"mlflow": mlflow.__version__}))


def in_process_baseline(project, rows: list[dict], repeats: int = 3000) -> dict:
    """The model's own predict_proba on one row, in this process, as the service loads it."""
    import warnings

    import numpy as np
    import pandas as pd

    from jupyter_mlops.scoring.holder import ModelHolder

    holder = ModelHolder(project, "cancer@production")
    holder.refresh()
    model = holder.current.model
    names = [name for name, _ in holder.current.columns]
    frame = pd.DataFrame([rows[0]], columns=names)
    array = frame.to_numpy()

    def median_ms(call) -> float:
        for _ in range(200):
            call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy without feature names: sklearn warns
        return {"predict_proba_frame_ms": median_ms(lambda: model.predict_proba(frame)),
                "predict_proba_array_ms": median_ms(lambda: model.predict_proba(array)),
                "dataframe_of_one_row_ms": median_ms(
                    lambda: pd.DataFrame([rows[0]], columns=names)),
                "numpy": np.__version__}


class Server:
    """One server process started for one round; `startup_s` from the command to the
    first 200 on /health."""

    def __init__(self, kind: str, project_root: Path) -> None:
        self.kind = kind
        self.port = _port()
        if kind == "mlflow":
            args = [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m",
                    str(MLFLOW_MODEL), "--env-manager", "local", "-h", "127.0.0.1",
                    "-p", str(self.port)]
            cwd = DATA
            env = {**os.environ, "PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ['PATH']}"}
        else:
            args = [sys.executable, "-m", "jupyter_mlops.cli.main", "serve",
                    "cancer@production", "--port", str(self.port)]
            args += {"ours-log": [], "ours-nolog": ["--no-log"],
                     "ours-w1": ["--workers", "1"], "ours-w2": ["--workers", "2"]}[kind]
            cwd = project_root
            env = None
        started = time.perf_counter()
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
        self._stderr: list[str] = []
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr),
                         daemon=True).start()
        while not self._healthy():
            if self.proc.poll() is not None:
                raise SystemExit(f"{kind} exited:\n{''.join(self._stderr)[-3000:]}")
            if time.perf_counter() - started > 120:
                raise SystemExit(f"{kind} did not answer /health in 120 s")
            time.sleep(0.005)
        self.startup_s = time.perf_counter() - started

    def _healthy(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Connection: close\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def session_cpu_seconds(session: int) -> float:
    """CPU time (user + system) of every live process of `session` (the server's tree):
    a figure the other load on a shared machine does not change much, unlike latency."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # fields[3] is the session id (field 6 of stat)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def request_bytes(kind: str, port: int, rows: list[dict]) -> bytes:
    body = json.dumps({"dataframe_records": rows} if kind == "mlflow"
                      else {"instances": rows}).encode()
    return ("POST /invocations HTTP/1.1\r\n" if kind == "mlflow"
            else "POST /predict HTTP/1.1\r\n").encode() + (
        f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Client:
    """A keep-alive HTTP/1.1 connection sending prebuilt requests; reads each answer
    whole (its Content-Length) and checks that it is a 200."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def call(self, request: bytes) -> None:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"not a 200: {head[:200]!r} {rest[:300]!r}")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise SystemExit(f"no Content-Length: {head!r}")
        while len(rest) < length:
            rest += self._chunk()
        self.buffer = rest[length:]

    def _more(self) -> None:
        self.buffer += self._chunk()

    def _chunk(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise SystemExit("connection closed by the server")
        return data

    def close(self) -> None:
        self.sock.close()


def latencies(port: int, requests: list[bytes], seconds: float, session: int) -> dict:
    client = Client(port)
    for request in requests[:50]:  # warm
        client.call(request)
    cpu = session_cpu_seconds(session)
    times, i = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        client.call(requests[i % len(requests)])
        times.append(time.perf_counter() - start)
        i += 1
    cpu = session_cpu_seconds(session) - cpu
    client.close()
    times.sort()
    return {"p50_ms": statistics.median(times) * 1000,
            "p99_ms": times[int(0.99 * len(times))] * 1000, "requests": len(times),
            "server_cpu_ms_per_request": cpu * 1000 / len(times)}


def throughput(port: int, requests: list[bytes], clients: int, seconds: float,
               session: int) -> dict:
    counts = [0] * clients
    start_gate = threading.Barrier(clients + 1)
    stop = threading.Event()

    def run(index: int) -> None:
        client = Client(port)
        for request in requests[:20]:
            client.call(request)
        start_gate.wait()
        i = index
        while not stop.is_set():
            client.call(requests[i % len(requests)])
            counts[index] += 1
            i += clients
        client.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    cpu = session_cpu_seconds(session)
    begun = time.perf_counter()
    time.sleep(seconds)
    before = sum(counts)
    elapsed = time.perf_counter() - begun
    cpu = session_cpu_seconds(session) - cpu
    stop.set()
    for thread in threads:
        thread.join()
    return {"per_second": before / elapsed, "server_cores_busy": cpu / elapsed}


def one_round(kind: str, root: Path, rows: list[dict], seconds: float) -> dict:
    server = Server(kind, root)
    try:
        one = [request_bytes(kind, server.port, [row]) for row in rows]
        hundred = [request_bytes(kind, server.port, rows[i:i + 100])
                   for i in range(0, len(rows) - 100, 37)]
        figures = {"startup_s": server.startup_s}
        session = server.proc.pid
        figures.update({f"1row_{k}": v
                        for k, v in latencies(server.port, one, seconds, session).items()})
        figures.update({f"100rows_{k}": v
                        for k, v in latencies(server.port, hundred, seconds, session).items()})
        loaded = throughput(server.port, one, 4, seconds, session)
        figures["4clients_per_second"] = loaded["per_second"]
        figures["4clients_server_cores_busy"] = loaded["server_cores_busy"]
    finally:
        server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--only", default=",".join(SERVERS),
                        help="comma-separated servers: ours-log, ours-nolog, ours-w1, "
                             "ours-w2, mlflow")
    parser.add_argument("--mlflow-side-save", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=str(HERE / "serving-results.json"))
    args = parser.parse_args()
    if args.mlflow_side_save:
        mlflow_side_save(args.mlflow_side_save)
        return
    kinds = args.only.split(",")
    project = our_project()
    X, _ = training_data()
    rows = [{k: float(v) for k, v in X.iloc[i].items()} for i in range(len(X))]
    if "mlflow" in kinds:
        done = subprocess.run([str(mlflow_python(sklearn_pin())), __file__, "--mlflow-side-save",
                               str(MLFLOW_MODEL)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"MLflow's side failed:\n{done.stderr[-3000:]}")
        mlflow_version = json.loads(done.stdout.strip().splitlines()[-1])["mlflow"]
    baseline = in_process_baseline(project, rows)
    print(json.dumps({"in_process": baseline}), flush=True)
    results: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for number in range(args.rounds):
        for kind in kinds:
            figures = one_round(kind, project.root, rows, args.seconds)
            results[kind].append(figures)
            print(json.dumps({"round": number, kind: figures}), flush=True)
    summary = {kind: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for kind, runs in results.items()}
    if "ours-log" in summary:
        ours = summary["ours-log"]
        ours["1row_p50_minus_predict_proba_ms"] = (
            ours["1row_p50_ms"] - baseline["predict_proba_frame_ms"])
        if "ours-nolog" in summary:
            off = summary["ours-nolog"]
            ours["1row_p99_over_nolog"] = ours["1row_p99_ms"] / off["1row_p99_ms"]
            ours["100rows_p99_over_nolog"] = ours["100rows_p99_ms"] / off["100rows_p99_ms"]
        if "mlflow" in summary:
            theirs = summary["mlflow"]
            ours["1row_p50_mlflow_over_ours"] = theirs["1row_p50_ms"] / ours["1row_p50_ms"]
            ours["4clients_ours_over_mlflow"] = (ours["4clients_per_second"]
                                                 / theirs["4clients_per_second"])
    if "ours-w1" in summary and "ours-w2" in summary:
        summary["4clients_w2_over_w1"] = (summary["ours-w2"]["4clients_per_second"]
                                          / summary["ours-w1"]["4clients_per_second"])
    out = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
           "python": sys.version.split()[0], "rounds": args.rounds,
           "seconds_per_figure": args.seconds, "in_process": baseline,
           "median": summary, "rounds_detail": results}
    if "mlflow" in kinds:
        out["mlflow"] = mlflow_version
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"median": summary, "in_process": baseline}, indent=2))


if __name__ == "__main__":
    main()
