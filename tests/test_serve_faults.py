"""`mlops serve` under real faults (issue 10 point 6): nothing answered is lost.

Each test runs a real service, injects a fault that root feels too (these
tests run as root, for whom chmod changes nothing), sends requests while it
lasts, checks `/health` says `degraded` with the reason, removes the fault,
and checks that every request answered 200 is in the prediction log exactly
once and that `/health` is `ok` again. `--log-buffer 8` makes the service spill
rows to `.mlops/spill/predictions/cancer/` after eight, as it would after
100,000.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from jupyter_mlops.artifacts import ArtifactStore
from jupyter_mlops.errors import NotFound
from jupyter_mlops.monitoring.predlog import INPUT_PREFIX, PredictionLog
from jupyter_mlops.project import Project
from jupyter_mlops.scoring.logger import LOG_WRITE_WAIT_SECONDS
from jupyter_mlops.store import Store

from .helpers import ServedModel, set_production, start_serve, trained_cancer_project, wait_for

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
ROW = {k: float(v) for k, v in X.iloc[0].items()}
BUFFER = 8
RECOVERY = 90.0  # seconds: retries back off to one every 30 s
MARKS = itertools.count(1000)  # each request's `mean radius`, unique across services


class Service(ServedModel):
    """A served model, with the requests these tests send it."""

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def health(self) -> dict:
        status, reply = self.request("GET", "/health")
        assert status == 200, reply
        return reply

    def predict(self, count: int) -> list[str]:
        """`count` requests, each marked by its `mean radius`; their request ids."""
        ids = []
        for _ in range(count):
            body = json.dumps({"instances": [{**ROW, "mean radius": next(MARKS)}]})
            status, reply = self.request("POST", "/predict", body.encode())
            assert status == 200, reply
            ids += reply["request_ids"]
        return ids



@pytest.fixture
def project(tmp_path: Path) -> Project:
    return trained_cancer_project(tmp_path)


@pytest.fixture
def start() -> Iterator:
    started: list[Service] = []

    def start(project: Project, log_name: str = "serve.log", model: bool = True) -> Service:
        served = start_serve(project, "cancer@production", "--poll", "0.5",
                             "--log-buffer", str(BUFFER), log_name=log_name, wait=model)
        started.append(Service(served.project, served.port, served.proc, served.log_path))
        if not model:  # /health is a 503 then
            assert wait_for(lambda: answers(started[-1]), timeout=90), \
                started[-1].log_text()
        return started[-1]

    yield start
    for service in started:
        if service.proc.poll() is None:
            service.proc.kill()
            service.proc.wait(timeout=60)


def answers(service: Service) -> bool:
    try:
        service.request("GET", "/health")
    except OSError:
        return service.proc.poll() is not None  # exited: let the caller see why
    return True


def logged(project: Project):  # noqa: ANN201
    with Store(project.db_path) as store:
        try:
            return PredictionLog(project).read(store, "cancer")
        except NotFound:
            return None


def has_rows(project: Project, ids: list[str]) -> bool:
    rows = logged(project)
    return rows is not None and set(ids) <= set(rows["request_id"])


def spill_files(project: Project) -> list[Path]:
    folder = project.home / "spill" / "predictions" / "cancer"
    return sorted(p for p in folder.glob("*.jsonl")) if folder.is_dir() else []


def assert_logged_once(project: Project, ids: list[str]) -> None:
    rows = logged(project)
    ok = rows[rows["status"] == "ok"]
    assert sorted(ok["request_id"]) == sorted(ids)  # every answered request, once
    assert rows["request_id"].is_unique
    assert ok[INPUT_PREFIX + "mean radius"].is_unique


def reasons_with(service: Service, *words: str) -> list[str]:
    health = service.health()
    if health["status"] != "degraded":
        return []
    return [r for r in health["reasons"] if all(word in r for word in words)]


def recovered(service: Service) -> bool:
    return service.health() == {"status": "ok", "model": "cancer:1"}


def test_a_prediction_folder_replaced_by_a_file_loses_nothing(project, start) -> None:
    """Fault: `.mlops/predictions/cancer` renamed away and a regular file put in its
    place (every batch write fails with NotADirectoryError, root or not); then the
    folder is put back."""
    service = start(project)
    ids = service.predict(3)
    assert wait_for(lambda: has_rows(project, ids), timeout=30), service.log_text()
    folder = project.home / "predictions" / "cancer"
    moved = folder.with_name("cancer.moved")
    folder.rename(moved)
    folder.write_text("not a folder\n")

    ids += service.predict(3)
    assert wait_for(lambda: reasons_with(service, "can't be written", "NotADirectoryError"),
                    timeout=30), service.health()
    ids += service.predict(3 * BUFFER)  # past the buffer's bound: spilled to a file
    assert wait_for(lambda: spill_files(project), timeout=30), service.log_text()
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in spill_files(project))
    degraded = service.health()
    assert degraded["model"] == "cancer:1"
    reason = reasons_with(service, "can't be written")[0]
    assert "nothing is lost" in reason and ".mlops/spill/predictions/cancer" in reason
    assert str(project.root) not in json.dumps(degraded)  # no server paths in /health

    folder.unlink()
    moved.rename(folder)
    assert wait_for(lambda: recovered(service), timeout=RECOVERY), service.health()
    assert not spill_files(project)
    assert_logged_once(project, ids)
    ids += service.predict(2)
    text = service.stop()
    assert_logged_once(project, ids)
    failures = [line for line in text.splitlines() if "NotADirectoryError" in line]
    assert len(failures) == 1, text  # said once, however many rounds failed
    assert "retrying in 1 s" in failures[0]
    assert "writing the prediction log: working again" in text
    assert text.count("rows are spilled to .mlops/spill/predictions/cancer") == 1, text
    assert "Traceback" not in text and f"stopped; {len(ids)} predictions logged" in text


def test_rows_spilled_at_a_stop_are_logged_by_the_next_start(project, start) -> None:
    """Fault: the prediction folder replaced by a file, and the service stopped
    (SIGTERM) while it lasts: the rows in memory are spilled at the stop, and
    the next start, with the folder back, writes them and removes the file."""
    folder = project.home / "predictions" / "cancer"
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder\n")
    first = start(project, "first.log")
    ids = first.predict(BUFFER + 3)
    text = first.stop()
    assert "stopped; 0 predictions logged" in text
    assert ("rows wait in .mlops/spill/predictions/cancer: the next start writes them"
            in text), text
    assert sum(len(p.read_text().splitlines()) for p in spill_files(project)) == len(ids)

    folder.unlink()
    second = start(project, "second.log")
    assert wait_for(lambda: not spill_files(project), timeout=RECOVERY), second.log_text()
    assert f"{len(ids)} prediction-log rows an earlier run spilled" in second.log_text()
    ids += second.predict(2)
    text = second.stop()
    assert_logged_once(project, ids)
    assert f"({len(ids) - 2} of them spilled earlier)" in text
    assert "Traceback" not in text


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def test_a_store_locked_by_another_process_loses_nothing(project, start) -> None:
    """Fault: another process holds the store's write lock (BEGIN IMMEDIATE) for
    longer than the service's flush waits for it (LOG_WRITE_WAIT_SECONDS), then
    commits."""
    service = start(project)
    ids = service.predict(2)
    assert wait_for(lambda: has_rows(project, ids), timeout=30), service.log_text()
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(project.db_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        ids += service.predict(3)
        assert wait_for(lambda: reasons_with(service, "can't be written", "database is locked",
                                             f"more than {LOG_WRITE_WAIT_SECONDS:g} s"),
                        timeout=60), service.health()
        ids += service.predict(3 * BUFFER)
        assert wait_for(lambda: spill_files(project), timeout=30), service.log_text()
        assert service.health()["status"] == "degraded"
    finally:
        locker.communicate("\n", timeout=60)
    assert locker.returncode == 0
    assert wait_for(lambda: recovered(service), timeout=RECOVERY), service.health()
    assert not spill_files(project)
    text = service.stop()
    assert_logged_once(project, ids)
    assert sum("database is locked" in line for line in text.splitlines()) == 1, text
    assert "Traceback" not in text


def test_an_unreadable_store_fails_the_alias_poll_until_it_is_back(project, start) -> None:
    """Fault: `.mlops/mlops.db` moved aside and a folder put in its place, so the
    alias poll raises SQLite's own OperationalError ("unable to open database
    file", not one of ours); the model it has keeps answering; then the file
    is put back."""
    service = start(project)
    ids = service.predict(2)
    assert wait_for(lambda: has_rows(project, ids), timeout=30), service.log_text()
    db = project.db_path
    aside = db.with_name("mlops.db.aside")
    db.rename(aside)
    db.mkdir()
    try:
        assert wait_for(lambda: reasons_with(service, "following cancer@production fails",
                                             "OperationalError", "still serving cancer:1"),
                        timeout=30), service.health()
        ids += service.predict(3)  # still answered by the version it has
    finally:
        db.rmdir()
        aside.rename(db)
    assert wait_for(lambda: recovered(service), timeout=RECOVERY), service.health()
    text = service.stop()
    assert_logged_once(project, ids)
    assert sum("unable to open database file" in line and "following" in line
               for line in text.splitlines()) == 1, text
    assert "following cancer@production: working again" in text
    assert "Traceback" not in text


def test_a_new_version_that_fails_to_load_leaves_the_old_one_served_and_said(tmp_path,
                                                                            start) -> None:
    """Fault: version 2's stored bytes corrupted, then the alias moved to it; the
    service keeps serving version 1 and /health says why until the alias is back."""
    project = trained_cancer_project(tmp_path, versions=2)
    with Store(project.db_path) as store:
        digest = store.models.resolve("cancer:2").digest
    stored = ArtifactStore(project.artifacts_dir).path_for(digest)
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    service = start(project)
    set_production(project, 2)
    assert wait_for(lambda: reasons_with(service, "still serving cancer:1", "cancer:2",
                                         "could not be loaded", "corrupted"),
                    timeout=30), service.health()
    ids = service.predict(2)
    set_production(project, 1)
    assert wait_for(lambda: recovered(service), timeout=30), service.health()
    text = service.stop()
    assert_logged_once(project, ids)
    assert sum("cannot load cancer:2" in line for line in text.splitlines()) == 1, text
    assert "Traceback" not in text


def test_health_is_503_only_without_a_model(tmp_path, start) -> None:
    project = trained_cancer_project(tmp_path)
    with Store(project.db_path) as store:
        digest = store.models.resolve("cancer:1").digest
    stored = ArtifactStore(project.artifacts_dir).path_for(digest)
    os.chmod(stored, 0o644)
    stored.write_bytes(b"not a model")
    service = start(project, model=False)
    status, reply = service.request("GET", "/health")
    assert status == 503 and reply["status"] == "unavailable" and reply["model"] is None
    assert isinstance(reply["reasons"], list)
    assert "Traceback" not in service.stop()
