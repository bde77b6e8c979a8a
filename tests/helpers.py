"""Helpers shared by tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def run_python(code: str, env: dict[str, str] | None = None,
               **kwargs) -> subprocess.CompletedProcess:
    """Run `code` in a new Python process (a real separate process, not a thread)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=kwargs.pop("timeout", 300), **kwargs)


def wait_for(condition, timeout: float = 30.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def sample_frame(n: int = 1000) -> pd.DataFrame:
    """A DataFrame with one column of each kind of dtype we hash differently."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "f": rng.random(n), "i": rng.integers(0, 10, n),
        "s": rng.choice(["a", "b", None], n), "c": pd.Categorical(rng.choice(["x", "y"], n)),
        "n": pd.array(rng.integers(0, 5, n), dtype="Int64"), "b": rng.random(n) > 0.5,
    })


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 90.0) -> None:
    """Wait until `url` answers; fail with the server's output if it exits or never does."""
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if server.poll() is not None:
                output = server.stdout.read() if server.stdout else ""
                errors = server.stderr.read() if server.stderr else ""
                pytest.fail(f"the server exited ({server.returncode}): {output}{errors}")
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def running_dashboard(root, *args: str, ready_path: str = "/login",
                      command: tuple[str, ...] = ("dashboard",)):
    """A real `mlops dashboard ARGS` on a free 127.0.0.1 port for the project at `root`
    (`command`: another way to start it, e.g. `("server", "--home", HOME, "dashboard")`).

    Yields (port, log path); the server's output goes to `root/server.log`, so a
    test can check what it logged. Stopped (SIGTERM) on exit.
    """
    port = free_port()
    log = root / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_mlops.cli.main", *command, "--port", str(port),
             *args], cwd=root, env={**os.environ, "MLOPS_HOME": str(root)},
            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}{ready_path}", process)
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class ServedModel:
    """`mlops serve` running in a subprocess of the test, its output in `log_path`."""

    project: Any
    port: int
    proc: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Stop it with `sig` (a clean stop: exit 0) and return what it printed."""
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)
        assert self.proc.returncode == 0, self.log_text()
        return self.log_text()


def start_serve(project, ref: str, *args: str, log_name: str = "serve.log",
                wait: bool = True) -> ServedModel:
    """`mlops serve REF ARGS` for `project` on a free port; with `wait`, once /health
    answers 200 (else the caller waits for what it expects)."""
    port = free_port()
    log_path = project.root / log_name
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_mlops.cli.main", "serve", ref, "--port", str(port),
             *args], cwd=project.root, env={**os.environ, "MLOPS_HOME": str(project.root)},
            stdout=log, stderr=log)
    served = ServedModel(project, port, proc, log_path)
    if wait:
        wait_until_serving(f"http://127.0.0.1:{port}/health", proc)
    return served


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def trained_cancer_project(root: Path, versions: int = 1) -> Any:
    """A project at `root` with `versions` breast-cancer classifiers registered as model
    `cancer` (C=1.0, then C=0.01), version 1 behind the `production` alias: what the
    serving tests serve."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import jupyter_mlops as mlops
    from jupyter_mlops.tracking import Tracker

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    project = mlops.init(root)
    tracker = Tracker(project)
    with tracker.start_run("train") as run:
        for c in (1.0, 0.01)[:versions]:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
            run.log_model(model.fit(X, y), name="cancer", input_example=X)
    tracker.close()
    set_production(project, 1)
    return project


def set_production(project: Any, version: int, model: str = "cancer") -> None:
    """Move `model`'s production alias to `version`."""
    from jupyter_mlops.store import Store

    with Store(project.db_path) as store:
        store.releases.set_alias(model, "production", version, actor="test", reason="test")
