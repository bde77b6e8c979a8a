"""The scoring service on loopback: validation, concurrent load, an alias switch
mid-load with zero failed requests, and every request logged exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import jupyter_mlops as mlops
from jupyter_mlops.monitoring.predlog import PredictionLog
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store
from jupyter_mlops.tracking import Tracker

from .helpers import free_port, wait_until_serving

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)


def start_service(project: Project, tracker: Tracker) -> tuple[str, subprocess.Popen]:
    """Two versions of `cancer` (C=1, C=0.01), production on 1, `mlops serve` following it."""
    with tracker.start_run("train") as run:
        for c in (1.0, 0.01):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
            run.log_model(model.fit(X, Y), name="cancer", input_example=X)
    with Store(project.db_path) as store:
        store.releases.set_alias("cancer", "production", 1, actor="test", reason="first")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "serve",
                             "cancer@production", "--port", str(port), "--poll", "0.2"],
                            cwd=project.root, env={**os.environ, "MLOPS_HOME": str(project.root)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base + "/health", proc)
    return base, proc


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One service for the tests that only send requests (the others stop theirs)."""
    project = mlops.init(tmp_path_factory.mktemp("serving"))
    tracker = Tracker(project)
    base, proc = start_service(project, tracker)
    tracker.close()
    yield base
    proc.kill()
    proc.communicate(timeout=60)


@pytest.fixture
def service(project, tracker):
    base, proc = start_service(project, tracker)
    yield base, project, proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=60)


def post(base: str, body: bytes | dict) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(base + "/predict", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def row(i: int = 0) -> dict:
    return {k: float(v) for k, v in X.iloc[i].items()}


def stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


def test_metadata_health_and_openapi(shared) -> None:
    base = shared
    health = json.loads(urllib.request.urlopen(base + "/health").read())
    assert health == {"status": "ok", "model": "cancer:1"}
    meta = json.loads(urllib.request.urlopen(base + "/metadata").read())
    assert meta["ref"] == "cancer:1" and meta["digest"].startswith("blake3:")
    assert meta["signature"]["inputs"][0] == {"name": "mean radius", "dtype": "float64"}
    spec = json.loads(urllib.request.urlopen(base + "/openapi.json").read())
    instance = spec["components"]["schemas"]["Instance"]
    assert instance["properties"]["mean radius"] == {"type": "number"}
    assert len(instance["required"]) == 30 and instance["additionalProperties"] is False


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "body"),
    ({"rows": []}, "rows"),
    ({"instances": []}, "instances"),
    ({"instances": [5]}, "instances[0]"),
    ({"instances": [{k: v for k, v in row().items() if k != "mean area"}]},
     "instances[0].mean area"),
    ({"instances": [{**row(), "mean area": "large"}]}, "instances[0].mean area"),
    ({"instances": [{**row(), "mean area": True}]}, "instances[0].mean area"),
    ({"instances": [{**row(), "<script>": 1}]}, "instances[0].<script>"),
    ({"instances": [row()] * 1001}, "instances"),
])
def test_bad_payloads_are_422_naming_the_field(shared, body, field) -> None:
    base = shared
    status, reply = post(base, body)
    assert status == 422 and reply["field"] == field, reply


def test_non_finite_numbers_and_huge_bodies(shared) -> None:
    base = shared
    status, reply = post(base, json.dumps({"instances": [{**row(), "mean area": float("nan")}]}
                                          ).encode())
    assert status == 422 and "finite" in reply["message"]
    status, reply = post(base, b"x" * (11 << 20))  # over the default 10 MiB
    assert status == 413 and "--max-body-mb" in reply["message"]
    request = urllib.request.Request(base + "/predict", data=b"x" * 100)  # no Content-Type
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 415
    assert json.loads(urllib.request.urlopen(base + "/health").read())["status"] == "ok"


def test_load_with_an_alias_switch_mid_way_loses_and_fails_nothing(service) -> None:
    base, project, proc = service
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 60
    after_switch = threading.Semaphore(0)

    def client(worker: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            outcome = post(base, {"instances": [row((worker * 97 + i) % len(X))]})
            i += 1
            with lock:
                results.append(outcome)
            if outcome[1].get("model") == "cancer:2":
                after_switch.release()
                if i > 40:
                    return
            elif i > 2000:
                return

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    while len(results) < 100:
        time.sleep(0.05)
    with Store(project.db_path) as store:  # an approved release would do exactly this
        store.releases.set_alias("cancer", "production", 2, actor="test", reason="switch")
    for thread in threads:
        thread.join()
    assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:3]
    models = [reply["model"] for _, reply in results]
    assert set(models) == {"cancer:1", "cancer:2"}
    meta = json.loads(urllib.request.urlopen(base + "/metadata").read())
    assert meta["ref"] == "cancer:2" and meta["switches"] == 1
    out = stop(proc)
    assert f"{len(results)} predictions logged" in out
    with Store(project.db_path) as store:
        logged = PredictionLog(project).read(store, "cancer")
    ids = [rid for _, reply in results for rid in reply["request_ids"]]
    assert len(logged) == len(results) and sorted(logged["request_id"]) == sorted(ids)
    assert set(logged["version"]) == {1, 2} and (logged["status"] == "ok").all()
    assert logged["latency_ms"].gt(0).all()


def test_invalid_requests_are_logged_too(service) -> None:
    base, project, proc = service
    post(base, {"instances": [{**row(), "mean area": "x"}]})
    post(base, {"instances": [row(1), row(2)]})
    stop(proc)
    with Store(project.db_path) as store:
        logged = PredictionLog(project).read(store, "cancer")
    assert sorted(logged["status"]) == ["invalid", "ok", "ok"]
    assert "mean area" in logged.loc[logged["status"] == "invalid", "error"].iloc[0]


def test_a_port_in_use_is_one_line_naming_it(service) -> None:
    base, project, _ = service
    port = base.rsplit(":", 1)[1]
    second = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "serve",
                             "cancer@production", "--port", port], cwd=project.root,
                            env={**os.environ, "MLOPS_HOME": str(project.root)},
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert f"port {port} is in use on 127.0.0.1" in second.stderr
    assert "Traceback" not in second.stderr


def test_sigterm_under_keep_alive_load_logs_every_answered_request(service) -> None:
    """Clients on open keep-alive connections keep sending through the stop: every
    request answered 200 is in the log, exactly once, and nothing is printed as a
    traceback (the open connections are closed before the final flush)."""
    import http.client
    import threading
    import time

    base, project, proc = service
    port = int(base.rsplit(":", 1)[1])
    answered: list[str] = []
    lock = threading.Lock()
    body = json.dumps({"instances": [row()]})

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while True:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                if response.status == 200:
                    with lock:
                        answered.extend(json.loads(data)["request_ids"])
        except (OSError, http.client.HTTPException, ValueError):
            return  # the server closed the connection at stop
        finally:
            conn.close()

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    for thread in clients:
        thread.join(30)
    assert proc.returncode == 0 and answered
    assert "Traceback" not in err and "CancelledError" not in err, err
    with Store(project.db_path) as store:
        ids = list(PredictionLog(project).read(store, "cancer")["request_id"])
    assert len(ids) == len(set(ids))
    assert set(answered) <= set(ids), f"{len(set(answered) - set(ids))} answered, not logged"


def test_a_model_without_dtypes_takes_numbers_only_so_its_log_stays_readable(
        project, tracker) -> None:
    """Logged without input_example, a model records feature names but no dtypes. A
    string or true/false sent for such a feature made a log batch whose column type
    differed from the others, and every later `mlops monitor report` failed."""
    with tracker.start_run("train") as run:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)
        run.log_model(model, name="plain")
    with Store(project.db_path) as store:
        store.releases.set_alias("plain", "production", 1, actor="test", reason="first")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "serve",
                             "plain@production", "--port", str(port)], cwd=project.root,
                            env={**os.environ, "MLOPS_HOME": str(project.root)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base + "/health", proc)
    for odd in ("14.0", True):
        status, reply = post(base, {"instances": [{**row(), "mean radius": odd}]})
        assert status == 422 and "input_example" in reply["message"], reply
    assert post(base, {"instances": [row(1)]})[0] == 200
    assert post(base, {"instances": [{**row(2), "mean radius": 14}]})[0] == 200  # an int
    stop(proc)
    report = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "monitor",
                             "report", "plain"], cwd=project.root, capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "MLOPS_HOME": str(project.root)})
    assert report.returncode == 0, report.stderr
