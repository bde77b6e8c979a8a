"""Cron schedules: due slots, missed slots once, never two runs at once, crontab lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime

import pytest

from jupyter_mlops.pipelines.schedule import crontab_lines, is_due, last_slot, run_scheduler
from jupyter_mlops.pipelines.spec import load_spec
from jupyter_mlops.store import Store

from .conftest import NOTEBOOKS


def at(text: str) -> float:
    return datetime.fromisoformat(text).astimezone().timestamp()


def test_last_slot() -> None:
    assert last_slot("0 3 * * *", at("2026-11-26T10:00:00")) == at("2026-11-26T03:00:00")
    assert last_slot("0 3 * * *", at("2026-11-26T03:00:00")) == at("2026-11-26T03:00:00")
    assert last_slot("*/15 * * * *", at("2026-11-26T10:07:30")) == at("2026-11-26T10:00:00")


@pytest.mark.parametrize(("last_run", "since", "now", "due"), [
    (None, "2026-11-26T02:00", "2026-11-26T02:59", False),   # first slot not reached yet
    (None, "2026-11-26T02:00", "2026-11-26T03:00", True),
    ("2026-11-26T03:00", "2026-11-26T02:00", "2026-11-26T10:00", False),  # ran this slot
    ("2026-11-23T03:00", "2026-11-26T09:00", "2026-11-26T10:00", True),  # missed 3 slots
])
def test_is_due(last_run, since, now, due) -> None:
    assert is_due("0 3 * * *", at(last_run) if last_run else None, at(since), at(now)) is due


def _scheduled_project(project):
    for name in ("make.ipynb", "use.ipynb"):
        shutil.copy(NOTEBOOKS / "pipeline" / name, project.root / name)
    (project.root / "pipelines").mkdir()
    spec_path = project.root / "pipelines" / "nightly.yaml"
    spec_path.write_text("name: nightly\nschedule: '0 3 * * *'\nsteps:\n"
                         "  make:\n    notebook: make.ipynb\n")
    return spec_path


def test_scheduler_runs_a_missed_slot_once_and_never_overlaps(project) -> None:
    spec_path = _scheduled_project(project)
    store = Store(project.db_path)
    ran: list[str] = []
    clock = iter([at("2026-11-26T01:00"), at("2026-11-26T10:00"), at("2026-11-26T10:01")])

    def run_pipeline(spec) -> None:
        ran.append(spec.name)
        pr = store.pipelines.start(spec.name, str(spec.path), "d", "schedule", ["make"])
        store.pipelines.finish(pr, "finished")

    sleeps: list[float] = []

    class Stop(Exception):
        pass

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise Stop

    with pytest.raises(Stop):
        run_scheduler(lambda: [load_spec(spec_path, project.root)], store, run_pipeline,
                      poll_seconds=7, log=lambda line: None, clock=lambda: next(clock),
                      sleep=sleep)
    assert ran == ["nightly"]  # slots of 03:00 missed while down: one run, then none
    assert sleeps == [7, 7]
    # A run still going (fresh heartbeat) blocks the next one.
    store.pipelines.start("nightly", str(spec_path), "d", "manual", ["make"])
    assert store.pipelines.is_running("nightly")
    started = run_scheduler(lambda: [load_spec(spec_path, project.root)], store, run_pipeline,
                            once=True, log=lambda line: None, clock=lambda: at("2026-11-27T04:00"))
    assert started == 0 and ran == ["nightly"]
    store.close()


def test_crontab_lines(project) -> None:
    spec = load_spec(_scheduled_project(project), project.root)
    [line] = crontab_lines([spec], mlops_command="mlops")
    assert line.startswith("0 3 * * * cd ")
    assert "mlops pipeline run pipelines/nightly.yaml --trigger schedule" in line
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "schedule",
                             "crontab"], capture_output=True, text=True, cwd=project.root)
    assert result.returncode == 0 and "pipelines/nightly.yaml" in result.stdout
