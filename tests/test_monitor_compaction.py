"""Compaction of the prediction log (issue 10 point 14): every row is kept exactly
once whatever stops it (kill -9 at each step, and at a random moment), writers and
readers carry on meanwhile, and reports don't change by a bit."""

from __future__ import annotations

import dataclasses
import fcntl
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from jupyter_mlops.errors import IntegrityError, NotFound
from jupyter_mlops.monitoring.compaction import LOCK_FILE
from jupyter_mlops.monitoring.predlog import PredictionLog
from jupyter_mlops.monitoring.profile import build_profile
from jupyter_mlops.monitoring.report import build_report
from jupyter_mlops.store import Store

HOUR = 3600


def hours_ago(hours: int) -> float:
    return (math.floor(time.time() / HOUR) - hours) * HOUR


def service_files(project, store, name="m", *, hours=3, files=20, rows=12, start=None,
                  version=1, seed=0, prefix="r") -> list[str]:
    """Files as the service writes them: `files` per hour of `rows` rows each, from
    `start` (default: `hours` + 1 hours ago, so every hour has ended). Returns the ids.

    The last row of each file has the same time as the next file's first row (ties
    across files), one file holds `in.x` as whole numbers (int64), and one file per
    hour comes from a batch job, its rows spread over the hour."""
    rng = np.random.default_rng(seed)
    log = PredictionLog(project)
    start = hours_ago(hours + 1) if start is None else start
    ids: list[str] = []
    step = HOUR / (files + 1)
    for hour in range(hours):
        for f in range(files):
            first = start + hour * HOUR + f * step
            at = first + np.sort(rng.uniform(0, 1, rows))
            at[0], at[-1] = first, first + step  # == the next file's first row
            x = rng.normal(0, 1, rows)
            if f == 3:
                x = np.round(x * 10).astype("int64")
            frame = pd.DataFrame({
                "request_id": [f"{prefix}-{hour}-{f}-{k}" for k in range(rows)], "at": at,
                "version": np.full(rows, version), "latency_ms": rng.uniform(1, 5, rows),
                "status": rng.choice(["ok", "ok", "ok", "invalid"], rows), "error": "",
                "output": rng.uniform(0, 1, rows), "in.x": x,
                "in.c": rng.choice(["a", "b"], rows)})
            log.write(store, name, frame, "service")
            ids += list(frame["request_id"])
        batch = 40
        frame = pd.DataFrame({
            "request_id": [f"{prefix}-{hour}-batch-{k}" for k in range(batch)],
            "at": start + hour * HOUR + np.sort(rng.uniform(0, HOUR - 1, batch)),
            "version": np.full(batch, version), "latency_ms": np.zeros(batch),
            "status": "ok", "error": "", "output": rng.uniform(0, 1, batch),
            "in.x": rng.normal(0, 1, batch), "in.c": rng.choice(["a", "b"], batch)})
        log.write(store, name, frame, "batch")
        ids += list(frame["request_id"])
    return ids


def on_disk(project, name="m") -> set[str]:
    folder = project.home / "predictions" / name
    return {f"predictions/{name}/{n}" for n in os.listdir(folder) if n != LOCK_FILE}


def assert_tidy(project, store, name="m") -> None:
    """Each file on disk is in the log (labels apart), nothing is waiting to be removed."""
    files = {p for p in on_disk(project, name) if "/labels-" not in p}
    assert files == store.predictions.indexed_paths(name)
    assert store.predictions.retired_files(name) == []


@pytest.fixture
def logged(project, store):
    ids = service_files(project, store)
    return project, store, ids, PredictionLog(project).read(store, "m")


def test_compaction_keeps_every_row_once_in_the_same_order(logged) -> None:
    project, store, ids, before = logged
    assert len(store.predictions.batches("m")) == 63
    result = PredictionLog(project).compact(store, "m")
    assert (result.merged, result.written, result.rows) == (63, 3, len(ids))
    assert result.skipped == () and not result.busy
    after = PredictionLog(project).read(store, "m")
    pd.testing.assert_frame_equal(before, after)
    assert sorted(after["request_id"]) == sorted(ids)
    assert len(store.predictions.batches("m")) == 3
    assert_tidy(project, store)
    # Nothing left to do: the merged files are left as they are.
    assert PredictionLog(project).compact(store, "m").written == 0


def test_reports_are_identical_before_and_after(project, store) -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 3000), "c": rng.choice(["a", "b"], 3000)})
    task = {"kind": "classification", "output": "probability", "classes": [0, 1]}
    for version in (1, 2):
        store.predictions.save_profile("m", version, build_profile(
            reference, rng.uniform(0, 1, 3000), task))
    ids = service_files(project, store, hours=2, version=1)
    ids += service_files(project, store, hours=2, version=2, start=hours_ago(3) - 1800,
                         prefix="v2", seed=4)  # hours shared with version 1, and one before
    log = PredictionLog(project)
    chosen = rng.choice(len(ids), len(ids) // 2, replace=False)
    log.write_labels(store, "m", pd.DataFrame({
        "request_id": [ids[i] for i in chosen], "label": rng.integers(0, 2, len(chosen))}))

    def reports():
        return [dataclasses.replace(build_report(project, store, "m", **window), until=0.0)
                for window in ({}, {"last": 500}, {"since": hours_ago(2)},
                               {"last": 13, "since": hours_ago(3)})]

    before = reports()
    assert before[0].versions[0].labelled > 0 and before[0].versions[1].calibration
    # The dashboard shows the report without drift (no input column read), then with it.
    first = build_report(project, store, "m", drift=False)
    full = before[0]
    assert full.versions[0].drift and full.versions[1].calibration
    assert not first.drift_measured and all(v.drift == () for v in first.versions)
    assert list(first.checks) == [c for c in full.checks if " drift " not in c.name]
    assert [dataclasses.replace(v, drift=()) for v in full.versions] == list(first.versions)
    assert first.timeline == full.timeline
    assert PredictionLog(project).compact(store, "m").written == 3
    assert reports() == before


@pytest.mark.parametrize("point", ["writing", "renamed", "committed", "unlinking",
                                   "forgetting"])
def test_killed_at_each_step_nothing_is_lost_or_doubled(logged, point) -> None:
    project, store, ids, before = logged
    killed = subprocess.run([sys.executable, "-c", KILLED_AT, point], cwd=project.root,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Readers see every row once at once, before any clean-up.
    pd.testing.assert_frame_equal(PredictionLog(project).read(store, "m"), before)
    result = PredictionLog(project).compact(store, "m")
    assert result.cleaned >= (point in ("writing", "renamed", "committed", "unlinking"))
    pd.testing.assert_frame_equal(PredictionLog(project).read(store, "m"), before)
    assert len(store.predictions.batches("m")) == 3
    assert not [n for n in os.listdir(project.home / "predictions" / "m") if n.endswith(".tmp")]
    assert_tidy(project, store)


@pytest.mark.parametrize("committed", [False, True])
def test_interrupted_around_the_swap_nothing_is_lost_or_doubled(logged, monkeypatch,
                                                                committed) -> None:
    """Ctrl-C just before or just after the transaction: the merged file is removed only
    when no batch row names it."""
    project, store, ids, before = logged
    repository = type(store.predictions)
    replace = repository.replace_batches

    def interrupted(self, *args, **kwargs):
        if committed:
            replace(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(repository, "replace_batches", interrupted)
    with pytest.raises(KeyboardInterrupt):
        PredictionLog(project).compact(store, "m")
    monkeypatch.setattr(repository, "replace_batches", replace)
    pd.testing.assert_frame_equal(PredictionLog(project).read(store, "m"), before)
    PredictionLog(project).compact(store, "m")
    pd.testing.assert_frame_equal(PredictionLog(project).read(store, "m"), before)
    assert_tidy(project, store)


KILLED_AT = """
import os, pathlib, signal, sys
import pyarrow.parquet as pq
from jupyter_mlops.monitoring.predlog import PredictionLog
from jupyter_mlops.project import find_project
from jupyter_mlops.store import Store
from jupyter_mlops.store.predictions import PredictionRepository

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

point = sys.argv[1]
if point == "writing":  # the merged file written under its temporary name
    write_table = pq.write_table
    pq.write_table = lambda *a, **k: (write_table(*a, **k), die())
elif point == "renamed":  # the merged file in place, not yet in the index
    PredictionRepository.replace_batches = die
elif point == "committed":  # the swap committed, no small file unlinked yet
    replace = PredictionRepository.replace_batches
    PredictionRepository.replace_batches = lambda *a, **k: (replace(*a, **k), die())
elif point == "unlinking":  # some small files unlinked
    unlink, count = pathlib.Path.unlink, [0]
    def unlink_then_die(self, *a, **k):
        count[0] += 1
        if count[0] == 5:
            die()
        return unlink(self, *a, **k)
    pathlib.Path.unlink = unlink_then_die
elif point == "forgetting":  # every small file unlinked, still listed as retired
    PredictionRepository.forget_retired = die
project = find_project()
with Store(project.db_path) as store:
    PredictionLog(project).compact(store, "m")
"""

COMPACT = """
from jupyter_mlops.monitoring.predlog import PredictionLog
from jupyter_mlops.project import find_project
from jupyter_mlops.store import Store

project = find_project()
with Store(project.db_path) as store:
    PredictionLog(project).compact(store, "m", max_rows=200)
"""


def test_killed_at_a_random_moment_nothing_is_lost_or_doubled(project, store) -> None:
    """kill -9 from outside while merged files appear, three times, then a full run."""
    service_files(project, store, hours=12, files=30)
    before = PredictionLog(project).read(store, "m")
    folder = project.home / "predictions" / "m"
    killed = 0
    for _ in range(3):
        merged = len([n for n in os.listdir(folder) if n.startswith("compact-")])
        proc = subprocess.Popen([sys.executable, "-c", COMPACT], cwd=project.root)
        deadline = time.monotonic() + 120
        while (proc.poll() is None and time.monotonic() < deadline
               and len([n for n in os.listdir(folder) if n.startswith("compact-")]) <= merged):
            time.sleep(0.002)
        proc.kill()
        killed += proc.wait() == -signal.SIGKILL
        pd.testing.assert_frame_equal(PredictionLog(project).read(store, "m"), before)
    assert killed  # (a round that finished first would have nothing to show)
    PredictionLog(project).compact(store, "m", max_rows=200)
    pd.testing.assert_frame_equal(PredictionLog(project).read(store, "m"), before)
    assert_tidy(project, store)


WRITER = """
import sys, time
import numpy as np, pandas as pd
from jupyter_mlops.monitoring.predlog import PredictionLog
from jupyter_mlops.project import find_project
from jupyter_mlops.store import Store

start, files = float(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(5)
project = find_project()
with Store(project.db_path) as store:
    for f in range(files):
        # Late flushes into past hours, and the current hour, in turn.
        at = start + rng.uniform(0, time.time() - start, 12)
        frame = pd.DataFrame({"request_id": [f"w-{f}-{k}" for k in range(12)], "at": at,
                              "version": 1, "latency_ms": 1.0, "status": "ok", "error": "",
                              "output": 0.5, "in.x": rng.normal(0, 1, 12), "in.c": "a"})
        PredictionLog(project).write(store, "m", frame, "service")
"""


def test_a_writer_and_readers_carry_on_during_compaction(project, store) -> None:
    ids = service_files(project, store, hours=4, files=25)
    writes = 300
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(hours_ago(5)), str(writes)],
                              cwd=project.root)
    problems: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        with Store(project.db_path) as mine:
            while not stop.is_set():
                try:
                    frame = PredictionLog(project).read(mine, "m")
                except Exception as exc:  # noqa: BLE001 - any failure is the finding
                    problems.append(repr(exc))
                    return
                if frame["request_id"].duplicated().any():
                    problems.append("a reader saw a row twice")
                    return

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    merged = 0
    try:
        while writer.poll() is None:
            merged += PredictionLog(project).compact(store, "m", settle=0).written
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert writer.returncode == 0 and problems == []
    assert merged >= 4
    PredictionLog(project).compact(store, "m", settle=0)
    frame = PredictionLog(project).read(store, "m")
    expected = ids + [f"w-{f}-{k}" for f in range(writes) for k in range(12)]
    assert len(frame) == len(expected) and set(frame["request_id"]) == set(expected)
    assert_tidy(project, store)


def test_a_reader_that_listed_the_small_files_reads_the_merged_one(logged,
                                                                    monkeypatch) -> None:
    """The compaction commits and unlinks between a reader's listing and its reads."""
    project, store, ids, before = logged
    repository = type(store.predictions)
    listing = repository.batches
    calls = []

    def list_then_compact(self, name, since=None):
        found = listing(self, name, since)
        calls.append(len(found))
        if len(calls) == 1:
            with Store(project.db_path) as other:
                PredictionLog(project).compact(other, "m")
        return found

    monkeypatch.setattr(repository, "batches", list_then_compact)
    pd.testing.assert_frame_equal(PredictionLog(project).read(store, "m"), before)
    assert calls[0] == 63 and calls[-1] == 3  # (the compaction's own listing between)


def test_a_file_missing_from_disk_is_named(logged) -> None:
    project, store, ids, before = logged
    lost = store.predictions.batches("m")[5].path
    (project.home / lost).unlink()
    with pytest.raises(NotFound, match=f"lists {lost}, which is missing"):
        PredictionLog(project).read(store, "m")
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "monitor",
                             "report", "m"], cwd=project.root, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and "which is missing" in result.stderr
    assert "Traceback" not in result.stderr
    # Compaction leaves that hour as it is and says why.
    outcome = PredictionLog(project).compact(store, "m")
    assert outcome.written == 2 and outcome.skipped[0].endswith("a file is missing from disk")


def test_a_file_that_is_not_parquet_is_named(logged) -> None:
    project, store, ids, before = logged
    broken = store.predictions.batches("m")[30].path
    (project.home / broken).write_bytes(b"not parquet")
    with pytest.raises(IntegrityError, match=f"{broken} is corrupted: expected a Parquet file"):
        PredictionLog(project).read(store, "m")
    outcome = PredictionLog(project).compact(store, "m")
    assert outcome.written == 2 and f"{broken} is corrupted" in outcome.skipped[0]
    assert broken in store.predictions.indexed_paths("m")


def test_one_compaction_at_a_time(logged) -> None:
    project, store, ids, before = logged
    fd = os.open(project.home / "predictions" / "m" / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert PredictionLog(project).compact(store, "m", wait=False).busy
    finally:
        os.close(fd)
    assert PredictionLog(project).compact(store, "m", wait=False).written == 3


def test_the_current_hour_waits_and_a_late_file_joins_its_merged_hour(project, store) -> None:
    this_hour = hours_ago(0)
    service_files(project, store, hours=1, start=this_hour - HOUR)
    log = PredictionLog(project)
    # A minute into this hour the last one has not settled (late flushes may come).
    assert log.compact(store, "m", now=this_hour + 60).written == 0
    assert log.compact(store, "m", now=this_hour + 60, settle=0).written == 1
    service_files(project, store, hours=1, files=1, start=this_hour - HOUR + 7, prefix="late")
    before = log.read(store, "m")
    assert len(store.predictions.batches("m")) == 3
    assert log.compact(store, "m", now=this_hour + 60, settle=0).written == 1
    pd.testing.assert_frame_equal(log.read(store, "m"), before)
    assert len(store.predictions.batches("m")) == 1
    # This hour's files are never merged.
    service_files(project, store, hours=1, start=this_hour, prefix="now")
    assert log.compact(store, "m", now=this_hour + 60, settle=0).written == 0


def test_large_hours_are_cut_into_files_of_max_rows(logged) -> None:
    project, store, ids, before = logged
    result = PredictionLog(project).compact(store, "m", max_rows=100)
    assert all(b.rows <= 100 for b in store.predictions.batches("m"))
    assert result.written > 3
    pd.testing.assert_frame_equal(PredictionLog(project).read(store, "m"), before)


def test_labels_are_still_checked_after_compaction(logged) -> None:
    project, store, ids, before = logged
    log = PredictionLog(project)
    log.compact(store, "m")
    done = log.write_labels(store, "m", pd.DataFrame({"request_id": [ids[0], "nobody"],
                                                      "label": [1, 0]}))
    assert (done.added, done.unknown) == (2, 1)


def test_mlops_monitor_compact(logged) -> None:
    project, store, ids, before = logged
    result = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "monitor",
                             "compact", "m"], cwd=project.root, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"m: merged 63 files into 3 ({len(ids)} rows)"
    refused = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "monitor",
                              "compact", "m", "--settle", "-5"], cwd=project.root,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "settle must be" in refused.stderr
