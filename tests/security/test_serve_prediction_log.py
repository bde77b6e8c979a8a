"""The prediction log of `mlops serve` can't be poisoned (issue 9, serving).

A body whose JSON holds a lone surrogate (`{"\\ud800": 1}`, legal JSON but not
text) used to make every later flush fail: the batch was re-queued forever, the
flush loop died on the first non-`MlopsError`, and the rows were lost at the
stop. Now such a body is refused at the door (400), a row that still cannot be
stored is set aside in a named file without holding back the others, the flush
loop outlives any failure (reported once), and the stop always flushes.
Real services, real Parquet files, real SQLite.
"""

from __future__ import annotations

import http.client
import json
import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import jupyter_mlops as mlops
from jupyter_mlops.errors import NotFound
from jupyter_mlops.monitoring.predlog import INPUT_PREFIX, PredictionLog
from jupyter_mlops.project import Project
from jupyter_mlops.scoring.logger import UNWRITABLE_FILE, BufferedLogger
from jupyter_mlops.store import Store
from jupyter_mlops.tracking import Tracker

from ..helpers import ServedModel, start_serve, wait_for

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
ROW = {k: float(v) for k, v in X.iloc[0].items()}

POISON = [  # raw bytes: json.dumps would write the surrogate escapes the same way
    b'{"instances": [{"\\ud800": 1}]}',
    b'{"instances": [{"mean radius": "x\\udfff"}]}',
    b'{"\\udc00": 1}',
]


Service = ServedModel


def trained_project(root: Path) -> Project:
    project = mlops.init(root)
    tracker = Tracker(project)
    with tracker.start_run("train") as run:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)
        run.log_model(model, name="cancer", input_example=X)
    tracker.close()
    with Store(project.db_path) as store:
        store.releases.set_alias("cancer", "production", 1, actor="test", reason="first")
    return project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return trained_project(tmp_path)


@pytest.fixture
def start(project: Project) -> Iterator:
    started: list[Service] = []

    def start() -> Service:
        started.append(start_serve(project, "cancer@production", "--poll", "0.5"))
        return started[-1]

    yield start
    for service in started:
        if service.proc.poll() is None:
            service.proc.kill()
            service.proc.wait(timeout=60)


def post(service: Service, body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def good(service: Service, i: int) -> str:
    """One valid request (its `mean radius` marks it); returns its request id."""
    status, reply = post(service, json.dumps({"instances": [{**ROW, "mean radius": 10 + i}]})
                         .encode())
    assert status == 200, reply
    return reply["request_ids"][0]


def logged(project: Project):  # noqa: ANN201
    with Store(project.db_path) as store:
        try:
            return PredictionLog(project).read(store, "cancer")
        except NotFound:  # nothing flushed yet
            return None


def has_rows(project: Project, ids: list[str]) -> bool:
    rows = logged(project)
    return rows is not None and set(ids) <= set(rows["request_id"])


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, id="SIGTERM"),
                                 pytest.param(signal.SIGINT, id="Ctrl-C")])
def test_a_lone_surrogate_is_refused_and_every_good_request_is_logged_once(start, sig) -> None:
    service = start()
    ids = [good(service, 0)]
    for body in POISON:
        status, reply = post(service, body)
        assert status == 400, reply
        assert "unpaired UTF-16 surrogate" in reply["message"]
        ids.append(good(service, len(ids)))
    # The loop still flushes while serving: the rows after the poison reach the log.
    assert wait_for(lambda: has_rows(service.project, ids), timeout=30), service.log_text()
    last = [good(service, len(ids) + i) for i in range(5)]  # likely still buffered at the stop
    text = service.stop(sig)

    rows = logged(service.project)
    ok = rows[rows["status"] == "ok"]
    assert sorted(ok["request_id"]) == sorted(ids + last)  # each exactly once
    assert sorted(ok[INPUT_PREFIX + "mean radius"]) == list(range(10, 10 + len(ids) + 5))
    invalid = rows[rows["status"] == "invalid"]
    assert len(invalid) == len(POISON)
    assert all("unpaired UTF-16 surrogate" in error for error in invalid["error"])
    # The service said so, one line per refused body, and never a traceback.
    assert text.count("refused 400 POST /predict") == len(POISON), text
    assert "a key of instances[0]: holds an unpaired UTF-16 surrogate" in text
    assert "instances[0].mean radius: holds an unpaired" in text
    assert "Traceback" not in text
    assert f"stopped; {len(ids) + 5 + len(POISON)} predictions logged" in text
    assert not (service.project.home / "predictions" / "cancer" / UNWRITABLE_FILE).exists()


def test_the_flush_loop_survives_a_failing_write_and_catches_up(start, project) -> None:
    folder = project.home / "predictions" / "cancer"
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("a file where the log's folder should be\n")  # every write fails
    service = start()
    ids = [good(service, i) for i in range(3)]
    assert wait_for(lambda: "could not write the prediction log" in service.log_text())
    ids += [good(service, 3 + i) for i in range(3)]
    time.sleep(2.5)  # a few more failing rounds (flushes are once a second)
    folder.unlink()
    # Without the fix the first OSError ended the loop: nothing more was written until the stop.
    assert wait_for(lambda: has_rows(project, ids), timeout=30), service.log_text()
    ids += [good(service, 6 + i) for i in range(3)]
    text = service.stop()

    rows = logged(project)
    assert sorted(rows["request_id"]) == sorted(ids) and (rows["status"] == "ok").all()
    failures = [line for line in text.splitlines() if "could not write the prediction log" in line]
    assert len(failures) == 1, text  # the same problem each second is reported once
    assert "NotADirectoryError" in failures[0]
    assert "writing the prediction log: working again" in text
    assert "Traceback" not in text and f"stopped; {len(ids)} predictions logged" in text


def test_rows_that_cannot_be_stored_are_set_aside_and_the_rest_written(project, caplog) -> None:
    """The logger itself: whatever reaches it, a bad row never blocks the others."""
    logger = BufferedLogger(project, "cancer")

    def row(i: int, **extra) -> dict:
        return {"request_id": f"r{i}", "at": 1000.0 + i, "version": 1, "latency_ms": 1.0,
                "status": "ok", "error": "", "output": 0.5, INPUT_PREFIX + "x": float(i),
                **extra}

    logger.add([row(0), row(1, error="instances[0].\ud800: unknown feature"), row(2)])
    logger.add([row(3, **{INPUT_PREFIX + "x": 2**70}), row(4)])  # no int64 holds it
    with caplog.at_level(logging.WARNING, logger="jupyter_mlops.scoring"):
        assert logger.flush() == 3
        logger.add([row(5), row(6, error="x\udc80")])
        assert logger.flush() == 1
    assert logger.written == 4 and logger.set_aside == 3 and logger.lost == 0
    assert logger.pending() == 0  # nothing re-queued: the next flush is not blocked

    rows = logged(project)
    assert sorted(rows["request_id"]) == ["r0", "r2", "r4", "r5"]
    aside = [json.loads(line) for line in
             (project.home / "predictions" / "cancer" / UNWRITABLE_FILE).read_text().splitlines()]
    assert [entry["row"]["request_id"] for entry in aside] == ["r1", "r3", "r6"]
    assert aside[0]["row"]["error"] == "instances[0].\ud800: unknown feature"  # kept whole
    assert "UnicodeEncodeError" in aside[0]["reason"]
    assert aside[1]["row"][INPUT_PREFIX + "x"] == 2**70
    messages = [r.getMessage() for r in caplog.records]
    assert sum("set aside in" in m for m in messages) == 2, messages  # once per kind of reason
    assert all(UNWRITABLE_FILE in m for m in messages)
    mode = (project.home / "predictions" / "cancer" / UNWRITABLE_FILE).stat().st_mode & 0o777
    assert mode == 0o600


def test_rows_that_cannot_be_set_aside_are_counted_and_the_rest_written(project, tmp_path,
                                                                         caplog) -> None:
    """The set-aside file is opened without following a link: a planted one loses the bad
    rows (counted, said once), never writes through it, never blocks the good ones."""
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched\n")
    folder = project.home / "predictions" / "cancer"
    folder.mkdir(parents=True)
    (folder / UNWRITABLE_FILE).symlink_to(outside)
    logger = BufferedLogger(project, "cancer")
    base = {"at": 1000.0, "version": 1, "latency_ms": 1.0, "status": "ok", "output": 0.5}
    with caplog.at_level(logging.WARNING, logger="jupyter_mlops.scoring"):
        for i in range(2):
            logger.add([{**base, "request_id": f"g{i}", "error": ""},
                        {**base, "request_id": f"b{i}", "error": "\udc80"}])
            assert logger.flush() == 1
    assert logger.written == 2 and logger.lost == 2 and logger.set_aside == 0
    assert sorted(logged(project)["request_id"]) == ["g0", "g1"]
    assert outside.read_text() == "untouched\n"
    lost = [r.getMessage() for r in caplog.records if "they are lost" in r.getMessage()]
    assert len(lost) == 1 and "OSError" in lost[0], lost


def test_batches_with_whole_and_decimal_numbers_read_as_one_column(project) -> None:
    """A feature sent as 1, 2 in one batch and 1.5 in the next reads back as floats."""
    logger = BufferedLogger(project, "cancer")
    base = {"at": 1000.0, "version": 1, "latency_ms": 1.0, "status": "ok", "error": "",
            "output": 0.5}
    logger.add([{**base, "request_id": "a", INPUT_PREFIX + "x": 1},
                {**base, "request_id": "b", INPUT_PREFIX + "x": 2}])
    logger.flush()
    logger.add([{**base, "request_id": "c", INPUT_PREFIX + "x": 1.5}])
    logger.flush()
    assert list(logged(project)[INPUT_PREFIX + "x"]) == [1.0, 2.0, 1.5]
