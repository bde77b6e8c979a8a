"""Cron schedules: due slots, missed slots once, never two runs at once, crontab lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
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


def test_one_failing_pipeline_is_recorded_and_does_not_stop_the_others(project) -> None:
    """A pipeline whose `${models.X@production}` has no holder yet fails on its own:
    recorded as a failed scheduled run with the reason, tried again at its next slot
    (not at every poll), while the other pipeline runs."""
    from jupyter_mlops.pipelines.runner import PipelineRunner

    good = _scheduled_project(project)
    broken = project.root / "pipelines" / "broken.yaml"
    broken.write_text("name: broken\nschedule: '0 3 * * *'\nsteps:\n  make:\n"
                      "    notebook: make.ipynb\n    params: {out: '${models.churn@production}'}\n")
    store = Store(project.db_path)
    lines: list[str] = []

    def run_pipeline(spec) -> None:
        PipelineRunner(spec, project, store, trigger="schedule").run()

    def specs():
        return [load_spec(broken, project.root), load_spec(good, project.root)]

    times = iter([at("2026-11-26T01:00"), at("2026-11-26T10:00")])
    started = run_scheduler(specs, store, run_pipeline, once=True, log=lines.append,
                            clock=lambda: next(times))
    assert started == 2
    [failed] = store.pipelines.recent("broken")
    assert failed.status == "failed" and failed.trigger == "schedule"
    assert "production" in failed.error and {s.status for s in failed.steps} == {"skipped"}
    assert any(line.startswith("broken: failed:") for line in lines)
    [nightly] = store.pipelines.recent("nightly")
    assert nightly.status == "finished"
    # The failure counts as this slot's run: the next poll does not retry it.
    again = run_scheduler(specs, store, run_pipeline, once=True, log=lines.append,
                          clock=time.time)
    assert again == 0 and len(store.pipelines.recent("broken")) == 1
    store.close()


def test_a_bug_in_one_run_is_logged_with_its_type_and_the_loop_goes_on(project) -> None:
    spec_path = _scheduled_project(project)
    store = Store(project.db_path)
    lines: list[str] = []

    def run_pipeline(spec) -> None:
        raise FileExistsError("a runner bug")

    times = iter([at("2026-11-26T01:00"), at("2026-11-26T10:00")])
    run_scheduler(lambda: [load_spec(spec_path, project.root)], store, run_pipeline,
                  once=True, log=lines.append, clock=lambda: next(times))
    [run] = store.pipelines.recent("nightly")
    assert run.status == "failed" and run.error == "FileExistsError: a runner bug"
    assert "nightly: failed: FileExistsError: a runner bug" in lines[-1]
    store.close()


def test_a_spec_that_stops_parsing_is_reported_and_the_scheduler_goes_on(project) -> None:
    _scheduled_project(project)
    (project.root / "pipelines" / "typo.yaml").write_text("name: typo\nsteps: [unclosed\n")
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "schedule", "run",
                             "--once"], capture_output=True, text=True, cwd=project.root,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "typo.yaml until it is fixed" in result.stderr and "Traceback" not in result.stderr
