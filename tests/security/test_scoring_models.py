"""`mlops serve` and model versions it must not load (issue 9, point 6 as the service sees it).

A version whose file holds an untrusted type, or whose stored bytes no longer
match their digest, is refused with one line naming it and why, at start and
on an alias switch: never a traceback, never a 500. With no model loaded the
service answers 503; with one loaded it keeps serving it. A refused version is
not retried (or reported again) until the alias moves.
"""

from __future__ import annotations

import json
import operator
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import skops.io
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import jupyter_mlops as mlops
from jupyter_mlops.artifacts import ArtifactStore
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store
from jupyter_mlops.tracking import Tracker

from ..helpers import free_port, wait_for

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
ROW = {k: float(v) for k, v in X.iloc[0].items()}


@dataclass
class Service:
    project: Project
    base: str
    proc: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def register_bytes(project: Project, data: bytes) -> int:
    """A new version of `cancer` holding `data`, with version 1's signature."""
    digest, size = ArtifactStore(project.artifacts_dir).put_bytes(data)
    with Store(project.db_path) as store:
        store.artifacts.record(digest, size)
        first = store.models.get("cancer", 1)
        return store.models.register("cancer", digest=digest, flavor="skops", run_id=None,
                                     signature=first.signature, input_datasets=[]).version


def fitted(c: float):  # noqa: ANN201
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500)).fit(X, Y)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, dict[str, int]]:
    """cancer:1 good, :2 untrusted (a function node `operator.neg`), :3 good, :4 corrupted."""
    root = tmp_path_factory.mktemp("scoring-models")
    project = mlops.init(root)
    tracker = Tracker(project)
    with tracker.start_run("train") as run:
        run.log_model(fitted(1.0), name="cancer", input_example=X)
    tracker.close()
    untrusted = make_pipeline(FunctionTransformer(operator.neg), StandardScaler(),
                              LogisticRegression(max_iter=500)).fit(X, Y)
    numbers = {"good": 1, "untrusted": register_bytes(project, skops.io.dumps(untrusted)),
               "other": register_bytes(project, skops.io.dumps(fitted(0.1)))}
    numbers["corrupted"] = register_bytes(project, skops.io.dumps(fitted(0.5)))
    with Store(project.db_path) as store:
        digest = store.models.get("cancer", numbers["corrupted"]).digest
    blob = ArtifactStore(project.artifacts_dir).path_for(digest)
    blob.chmod(0o600)
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")  # one byte changed on disk
    return project, numbers


def move_alias(project: Project, version: int) -> None:
    with Store(project.db_path) as store:
        store.releases.set_alias("cancer", "production", version, actor="test",
                                 reason="test")


@pytest.fixture(scope="module")
def service(versions) -> Iterator[Service]:
    """`mlops serve cancer@production` started while the alias names the untrusted version."""
    project, numbers = versions
    move_alias(project, numbers["untrusted"])
    port = free_port()
    log_path = project.root / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_mlops.cli.main", "serve", "cancer@production",
             "--port", str(port), "--poll", "0.2"],
            cwd=project.root, env={**os.environ, "MLOPS_HOME": str(project.root)},
            stdout=log, stderr=log)
    service = Service(project, f"http://127.0.0.1:{port}", proc, log_path)
    assert wait_for(lambda: status_of(service, "/health")[0] != 0 or proc.poll() is not None,
                    timeout=90), service.log_text()
    yield service
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def status_of(service: Service, path: str, body: dict | None = None) -> tuple[int, dict]:
    """(status, JSON reply) of a GET, or of a JSON POST when `body` is given; 0 if no answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(service.base + path, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except OSError:
        return 0, {}


def serving_version(service: Service) -> str | None:
    status, reply = status_of(service, "/health")
    return reply.get("model") if status == 200 else None


def test_an_untrusted_version_at_start_gives_503_and_one_line(service, versions) -> None:
    _, numbers = versions
    assert service.proc.poll() is None, service.log_text()
    health = status_of(service, "/health")
    assert health[0] == 503 and health[1]["status"] == "unavailable"
    for path, body in (("/predict", {"instances": [ROW]}), ("/metadata", None),
                       ("/openapi.json", None)):
        status, reply = status_of(service, path, body)
        assert status == 503 and "no model is loaded" in reply["message"], (path, reply)
        assert "/" + "tmp" not in reply["message"]
    log = service.log_text()
    untrusted = f"cannot load cancer:{numbers['untrusted']} (cancer@production)"
    lines = [line for line in log.splitlines() if untrusted in line]
    assert len(lines) == 1, log
    assert "operator.neg" in lines[0] and "/predict answers 503" in lines[0]
    assert "Traceback" not in log


def test_a_corrupted_version_on_switch_keeps_the_old_model(service, versions) -> None:
    project, numbers = versions
    move_alias(project, numbers["good"])
    assert wait_for(lambda: serving_version(service) == "cancer:1", timeout=60), \
        service.log_text()
    assert status_of(service, "/predict", {"instances": [ROW]})[0] == 200
    move_alias(project, numbers["corrupted"])
    corrupted = f"cannot load cancer:{numbers['corrupted']} (cancer@production)"
    assert wait_for(lambda: corrupted in service.log_text(), timeout=60)
    status, reply = status_of(service, "/predict", {"instances": [ROW]})
    assert status == 200 and reply["model"] == "cancer:1"
    line = next(line for line in service.log_text().splitlines() if corrupted in line)
    assert "corrupted" in line and "still serving cancer:1" in line
    move_alias(project, numbers["other"])  # the alias moves on: the service follows
    expected = f"cancer:{numbers['other']}"
    assert wait_for(lambda: serving_version(service) == expected, timeout=60)
    log = service.log_text()
    assert log.count(corrupted) == 1 and "Traceback" not in log
    assert log.count(f"cannot load cancer:{numbers['untrusted']} ") == 1
