"""`mlops serve --workers N`: serving processes on one port feeding one prediction
log through one writer process: every answered request logged exactly once, also
when a serving process is killed with SIGKILL right after answering; /metadata
the same from each; the alias followed by all."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from jupyter_mlops.monitoring.predlog import PredictionLog
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store

from .helpers import set_production, start_serve, trained_cancer_project

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
ROWS = [{k: float(v) for k, v in X.iloc[i].items()} for i in range(len(X))]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return trained_cancer_project(tmp_path, versions=2)


def call(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """One request on a connection of its own (so the kernel may give it to any worker)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, data, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, oldest (lowest pid) first."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def wait_for_children(served, count: int, without: int | None = None) -> list[int]:
    """The service's child processes once there are `count` of them (none of them
    `without`, a killed one not yet reaped), or as they are after 60 s."""
    deadline = time.monotonic() + 60
    while True:
        family = [pid for pid in children(served.proc.pid) if pid != without]
        if len(family) >= count or time.monotonic() > deadline:
            return family
        time.sleep(0.1)


def send_load(port: int, clients: int, each: int) -> tuple[list[str], int]:
    """`clients` threads sending `each` requests (1 to 3 rows, every fifth invalid);
    returns the request ids answered 200 and the number of 422s."""
    ids: list[str] = []
    invalid = [0]
    lock = threading.Lock()

    def client(number: int) -> None:
        for i in range(each):
            if i % 5 == 4:
                status, reply = call(port, "POST", "/predict",
                                     {"instances": [{"mean radius": "big"}]})
                assert status == 422, reply
                with lock:
                    invalid[0] += 1
                continue
            rows = ROWS[(number * each + i) % 500:][: 1 + i % 3]
            status, reply = call(port, "POST", "/predict", {"instances": rows})
            assert status == 200, reply
            with lock:
                ids.extend(reply["request_ids"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids, invalid[0]


def logged(project: Project):  # noqa: ANN201
    with Store(project.db_path) as store:
        return PredictionLog(project).read(store, "cancer")


def test_many_requests_across_workers_are_each_logged_once(project) -> None:
    served = start_serve(project, "cancer@production", "--workers", "2", "--poll", "0.2")
    family = wait_for_children(served, 3)  # two serving processes and the writer
    assert len(family) == 3, served.log_path.read_text()
    ids, invalid = send_load(served.port, clients=4, each=40)
    metadata = [call(served.port, "GET", "/metadata")[1] for _ in range(20)]
    assert all(m == metadata[0] for m in metadata) and metadata[0]["version"] == 1
    health = {json.dumps(call(served.port, "GET", "/health")[1]) for _ in range(20)}
    assert health == {json.dumps({"status": "ok", "model": "cancer:1"})}
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=120)
    text = served.log_path.read_text()
    rows = logged(project)
    ok = rows[rows["status"] == "ok"]
    assert sorted(ok["request_id"]) == sorted(ids) and rows["request_id"].is_unique
    assert (rows["status"] == "invalid").sum() == invalid
    assert f"stopped; {len(ids) + invalid} predictions logged" in text, text
    assert "Traceback" not in text


def test_a_worker_killed_with_sigkill_loses_no_answered_row(project) -> None:
    served = start_serve(project, "cancer@production", "--workers", "2", "--poll", "0.2")
    family = wait_for_children(served, 3)
    assert len(family) == 3, served.log_path.read_text()
    writer, *serving = family  # the writer is forked first
    ids, _ = send_load(served.port, clients=2, each=10)
    os.kill(serving[0], signal.SIGKILL)  # at once: its rows were handed over as it answered
    more, _ = send_load(served.port, clients=2, each=10)  # the other one answers
    family = wait_for_children(served, 3, without=serving[0])
    assert writer in family and len(family) == 3, (family, served.log_path.read_text())
    set_production(project, 2)  # the replacement follows the alias like the others
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        versions = {call(served.port, "GET", "/metadata")[1]["version"] for _ in range(10)}
        if versions == {2}:
            break
        time.sleep(0.2)
    assert versions == {2}
    more += send_load(served.port, clients=2, each=5)[0]
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=120)
    text = served.log_path.read_text()
    assert re.search(rf"serving process \d \(pid {serving[0]}\) ended \(signal SIGKILL\); "
                     "starting another", text), text
    ok = logged(project).query("status == 'ok'")
    assert sorted(ok["request_id"]) == sorted(ids + more) and ok["request_id"].is_unique
    assert "Traceback" not in text


def test_workers_must_be_a_sensible_number(project) -> None:
    served = start_serve(project, "cancer@production", "--workers", "0", wait=False)
    served.proc.wait(timeout=120)
    text = served.log_path.read_text()
    assert served.proc.returncode == 1
    assert "mlops: error: --workers 0: give a number of processes from 1 to 256" in text


def test_the_service_stops_with_one_line_when_its_log_writer_dies(project) -> None:
    """The writer holds rows not yet written: the service does not go on without it."""
    served = start_serve(project, "cancer@production", "--workers", "2")
    writer, *serving = wait_for_children(served, 3)
    send_load(served.port, clients=1, each=5)
    os.kill(writer, signal.SIGKILL)
    served.proc.wait(timeout=120)
    text = served.log_path.read_text()
    assert served.proc.returncode == 1, text
    assert ("mlops: error: the prediction log's writer process ended (signal SIGKILL); the "
            "service stopped") in text, text
    assert "Traceback" not in text
    assert not any(Path(f"/proc/{pid}").exists() for pid in serving)  # stopped with it
