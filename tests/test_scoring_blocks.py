"""The prediction log's blocks (rows of the fast path, column by column): written as
the same table their rows would make, and on every rare path (a failed write, a
spill, failures in the same buffer) kept row for row, nothing lost or doubled."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import jupyter_mlops as mlops
from jupyter_mlops.monitoring.predlog import INPUT_PREFIX, PredictionLog
from jupyter_mlops.project import Project
from jupyter_mlops.scoring.logger import Block, BufferedLogger, PredictionLogUnavailable
from jupyter_mlops.store import Store

NAMES = (INPUT_PREFIX + "a", INPUT_PREFIX + "b")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return mlops.init(tmp_path)


def block(first: int, count: int) -> Block:
    values = np.arange(first * 2, (first + count) * 2, dtype=np.float64).reshape(count, 2)
    return Block(ids=[f"b{i}" for i in range(first, first + count)], at=1000.0 + first,
                 version=1, latency_ms=0.5, outputs=values[:, 0] / 100, names=NAMES,
                 inputs=values)


def failure(rid: str) -> dict:
    return {"request_id": rid, "at": 999.0, "version": 1, "latency_ms": 0.1,
            "status": "invalid", "error": "instances: missing", "output": float("nan")}


def logged(project: Project):
    with Store(project.db_path) as store:
        return PredictionLog(project).read(store, "cancer")


def test_blocks_are_written_as_the_table_their_rows_make(project) -> None:
    logger = BufferedLogger(project, "cancer")
    logger.add_block(block(0, 3))
    logger.add_block(block(3, 1))
    assert logger.pending() == 4 and logger.flush() == 4 and logger.pending() == 0
    as_rows = BufferedLogger(project, "cancer")
    as_rows.add(block(10, 2).rows())
    as_rows.flush()
    with Store(project.db_path) as store:
        tables = [PredictionLog(project).read_table(store, "cancer")]
        batches = store.predictions.batches("cancer")
    import pyarrow.parquet as pq

    schemas = {str(pq.read_schema(project.home / batch.path).remove_metadata())
               for batch in batches}
    assert len(batches) == 2 and len(schemas) == 1  # one schema, however the rows came
    frame = logged(project).sort_values("request_id")
    assert list(frame["request_id"]) == ["b0", "b1", "b10", "b11", "b2", "b3"]
    row = frame[frame["request_id"] == "b3"].iloc[0]
    assert (row["at"], row["version"], row[NAMES[0]], row[NAMES[1]], row["status"]) == \
        (1003.0, 1, 6.0, 7.0, "ok")
    assert tables[0].num_rows == 6


def test_blocks_and_failures_in_one_buffer_are_all_written(project) -> None:
    logger = BufferedLogger(project, "cancer")
    logger.add_block(block(0, 2))
    logger.add([failure("f0")])
    logger.add_block(block(2, 2))
    assert logger.flush() == 5 and logger.written == 5
    assert sorted(logged(project)["request_id"]) == ["b0", "b1", "b2", "b3", "f0"]


def test_a_failed_write_keeps_the_blocks_rows_for_the_next_flush(project) -> None:
    logger = BufferedLogger(project, "cancer")
    logger.add_block(block(0, 3))
    folder = project.home / "predictions"
    shutil.rmtree(folder, ignore_errors=True)
    folder.write_text("not a folder")  # the log can't be written
    with pytest.raises(PredictionLogUnavailable, match="3 rows kept"):
        logger.flush()
    assert logger.pending() == 3 and logger.written == 0
    folder.unlink()
    assert logger.flush() == 3
    assert sorted(logged(project)["request_id"]) == ["b0", "b1", "b2"]


def test_blocks_are_spilled_and_come_back_once(project) -> None:
    logger = BufferedLogger(project, "cancer", max_rows=4)
    full = []
    logger.on_full = lambda: full.append(logger.pending())
    logger.add_block(block(0, 3))
    logger.add_block(block(3, 2))  # crosses the bound
    assert full == [5]
    assert logger.spill() == 5 and logger.pending() == 0 and logger.spilled_waiting() == 5
    logger.add_block(block(5, 1))
    assert logger.flush() == 6
    assert sorted(logged(project)["request_id"]) == [f"b{i}" for i in range(6)]
