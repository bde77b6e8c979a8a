"""The service's prediction log, bounded: past its buffer's bound rows go to a
spill file while the log can't be written, and come back exactly once, even
when a process dies part-way or several services recover at once; the
periodic tasks back off and never die; `/health`'s reasons (issue 10 point 6).

Real files, real SQLite, real processes; the one stand-in is where a process
is made to die (`os._exit`) at the exact step a crash would hit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.errors import NotFound
from jupyter_mlops.monitoring.predlog import INPUT_PREFIX, PredictionLog
from jupyter_mlops.project import Project
from jupyter_mlops.scoring import supervision
from jupyter_mlops.scoring.holder import ModelHolder
from jupyter_mlops.scoring.logger import BufferedLogger, SpillFailed
from jupyter_mlops.scoring.supervision import Periodic, Watch, relieve
from jupyter_mlops.store import Store

from .helpers import run_python


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return mlops.init(tmp_path)


def rows(start: int, count: int, at: float = 1000.0) -> list[dict]:
    return [{"request_id": f"r{i}", "at": at + i, "version": 1, "latency_ms": 1.0,
             "status": "ok", "error": "", "output": 0.5, INPUT_PREFIX + "x": float(i)}
            for i in range(start, start + count)]


def logged_ids(project: Project) -> list[str]:
    with Store(project.db_path) as store:
        try:
            return list(PredictionLog(project).read(store, "cancer")["request_id"])
        except NotFound:
            return []


def spill_folder(project: Project) -> Path:
    return project.home / "spill" / "predictions" / "cancer"


def test_the_buffer_is_bounded_and_spilled_rows_come_back_once(project) -> None:
    logger = BufferedLogger(project, "cancer", max_rows=5)
    calls = []
    logger.on_full = lambda: calls.append(logger.pending())
    logger.add(rows(0, 3))
    logger.add(rows(3, 3))  # crosses the bound: said once
    logger.add(rows(6, 1))
    assert calls == [6]
    assert logger.spill() == 7 and logger.pending() == 0 and logger.spilled_waiting() == 7
    [spilled] = list(spill_folder(project).iterdir())
    assert spilled.name.startswith("spill-") and spilled.stat().st_mode & 0o777 == 0o600
    logger.add(rows(7, 2))
    assert logger.flush() == 9  # the buffer, then the spill file
    assert sorted(logged_ids(project)) == sorted(f"r{i}" for i in range(9))
    assert list(spill_folder(project).iterdir()) == []
    assert (logger.written, logger.spilled, logger.recovered) == (9, 7, 7)
    assert logger.spilled_waiting() == 0


def test_nan_outputs_and_whole_numbers_survive_a_spill(project) -> None:
    logger = BufferedLogger(project, "cancer")
    failure = {"request_id": "f", "at": 5.0, "version": 1, "latency_ms": 1.0,
               "status": "invalid", "error": "instances[0].x: missing", "output": float("nan")}
    logger.add([failure, {**rows(0, 1)[0], INPUT_PREFIX + "x": 3}])
    logger.spill()
    logger.flush()
    with Store(project.db_path) as store:
        frame = PredictionLog(project).read(store, "cancer")
    assert frame.loc[frame["request_id"] == "f", "output"].isna().all()
    assert frame.loc[frame["request_id"] == "r0", INPUT_PREFIX + "x"].tolist() == [3]


DIES_BEFORE_REMOVING = """
import os, sys
from jupyter_mlops.project import find_project
from jupyter_mlops.scoring import spill
from jupyter_mlops.scoring.logger import BufferedLogger

def die(claim):  # every row is in the log; the file is not removed yet
    os._exit(9)

spill.Claim.remove = die
BufferedLogger(find_project(), "cancer").flush()
"""


def test_a_process_that_dies_after_writing_spilled_rows_does_not_double_them(project) -> None:
    """rename-then-delete: the dead writer left `recovering-*`; the next one skips
    the request ids the log holds and writes only the rest."""
    logger = BufferedLogger(project, "cancer")
    logger.add(rows(0, 6))
    logger.spill()
    done = run_python(DIES_BEFORE_REMOVING, env={"MLOPS_HOME": str(project.root)},
                      cwd=project.root)
    assert done.returncode == 9, done.stderr
    [left] = list(spill_folder(project).iterdir())
    assert left.name.startswith("recovering-")
    assert sorted(logged_ids(project)) == [f"r{i}" for i in range(6)]
    # A later spill file from the same time span, not yet written, must still be.
    logger.add(rows(6, 2))
    logger.spill()

    again = BufferedLogger(project, "cancer")
    assert again.find_spilled() == 8
    assert again.flush() == 2
    assert sorted(logged_ids(project)) == sorted(f"r{i}" for i in range(8))  # each once
    assert list(spill_folder(project).iterdir()) == []


RECOVERS = """
import sys, time
from pathlib import Path
from jupyter_mlops.project import find_project
from jupyter_mlops.scoring.logger import BufferedLogger

go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
print(BufferedLogger(find_project(), "cancer").flush())
"""


def test_four_services_recovering_at_once_write_each_row_once(project, tmp_path) -> None:
    logger = BufferedLogger(project, "cancer")
    for part in range(12):
        logger.add(rows(part * 5, 5, at=1000.0 + part))
        logger.spill()
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RECOVERS, str(go)], cwd=project.root,
                              env={**os.environ, "MLOPS_HOME": str(project.root)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    go.touch()
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    assert sum(int(out) for out, _ in outputs) == 60
    ids = logged_ids(project)
    assert len(ids) == 60 and len(set(ids)) == 60
    assert list(spill_folder(project).iterdir()) == []


def test_rows_stay_in_memory_when_they_cannot_be_spilled_either(project) -> None:
    """Fault: the spill folder's path is a regular file."""
    spill_folder(project).parent.mkdir(parents=True)
    spill_folder(project).write_text("not a folder\n")
    logger = BufferedLogger(project, "cancer", max_rows=2)
    logger.add(rows(0, 3))
    with pytest.raises(SpillFailed, match="could not spill 3 prediction-log rows to "
                                          r"\.mlops/spill/predictions/cancer \(they stay"):
        logger.spill()
    logger.add(rows(3, 1))
    assert logger.pending() == 4 and logger.spilled == 0
    assert logger.flush() == 4  # the log itself is fine: nothing was lost
    assert sorted(logged_ids(project)) == [f"r{i}" for i in range(4)]
    assert "could not read the spilled prediction-log rows" in logger.recovery_problem


@pytest.mark.parametrize(("failures", "delay"), [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30),
                                                 (40, 30)])
def test_retries_back_off_from_one_second_to_thirty(failures, delay) -> None:
    task = Periodic("work", lambda: None, 0.5)
    task.failures = failures
    assert task.retry_delay() == delay


def test_a_periodic_task_survives_any_exception_and_says_so_once(monkeypatch, caplog) -> None:
    monkeypatch.setattr(supervision, "FIRST_RETRY_SECONDS", 0.001)
    monkeypatch.setattr(supervision, "MAX_RETRY_SECONDS", 0.004)
    outcomes = [FileExistsError(17, "File exists"), KeyError("x"), KeyError("x"), None, None]
    seen: list[str | None] = []

    async def main() -> None:
        stop = asyncio.Event()

        def work() -> None:
            seen.append(task.problem)
            outcome = outcomes.pop(0) if outcomes else None
            if not outcomes:
                loop.call_soon_threadsafe(stop.set)
            if outcome is not None:
                raise outcome

        loop = asyncio.get_running_loop()
        task = Periodic("doing the work", work, 0.001)
        await asyncio.wait_for(task.run(stop), timeout=60)
        assert task.problem is None and task.failures == 0

    with caplog.at_level(logging.INFO, logger="jupyter_mlops.scoring"):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert seen[1] == "doing the work failed: FileExistsError: [Errno 17] File exists"
    assert sum("FileExistsError" in m for m in messages) == 1
    assert sum("KeyError" in m for m in messages) == 1  # the same problem twice: said once
    assert messages.count("doing the work: working again") == 1, messages


def test_health_reasons(project, tracker) -> None:
    from sklearn.linear_model import LogisticRegression

    with tracker.start_run("train") as run:
        run.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), name="cancer")
    with Store(project.db_path) as store:
        store.releases.set_alias("cancer", "production", 1, actor="test", reason="test")
    holder = ModelHolder(project, "cancer@production")
    holder.refresh()
    logger = BufferedLogger(project, "cancer", max_rows=10)
    tasks = [Periodic(what, lambda: None, 1.0) for what in ("following", "writing", "spilling")]
    watch = Watch(holder, logger, *tasks)
    assert watch.reasons() == []
    logger.add(rows(0, 6))  # over half the bound, the log working
    assert watch.reasons() == ["6 prediction-log rows wait to be written (rows are spilled "
                               "to a file past 10)"]
    tasks[1]._failed(OSError(28, "No space left on device"))
    relieve(logger, tasks[1], lambda: None)  # not at the bound yet: nothing spilled
    logger.add(rows(6, 4))
    relieve(logger, tasks[1], lambda: None)  # at the bound, the log failing: spilled
    [reason] = watch.reasons()
    assert reason.startswith("the prediction log can't be written since 20")
    assert ("(OSError: [Errno 28] No space left on device); 0 rows wait in "
            "memory and 10 in .mlops/spill/predictions/cancer, nothing is lost") in reason
    tasks[1]._worked()
    assert watch.reasons() == ["10 prediction-log rows spilled to .mlops/spill/predictions/"
                               "cancer are not yet in the log; they are written when it can "
                               "take them"]
    logger.flush()
    assert watch.reasons() == []
