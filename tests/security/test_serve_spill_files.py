"""Spill files of `mlops serve` (issue 10 point 6) are private and never followed
through a link: a link or FIFO planted under a spill file's name is left alone
and said once (never read, never removed, never a hang), a spill folder that is
a link is refused (the rows stay in memory), and the other files still come
back into the log. Real files, real SQLite.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

import jupyter_mlops as mlops
from jupyter_mlops.errors import NotFound
from jupyter_mlops.monitoring.predlog import INPUT_PREFIX, PredictionLog
from jupyter_mlops.project import Project
from jupyter_mlops.scoring.logger import BufferedLogger, SpillFailed
from jupyter_mlops.store import Store


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return mlops.init(tmp_path / "project")


def rows(start: int, count: int) -> list[dict]:
    return [{"request_id": f"r{i}", "at": 1000.0 + i, "version": 1, "latency_ms": 1.0,
             "status": "ok", "error": "", "output": 0.5, INPUT_PREFIX + "x": float(i)}
            for i in range(start, start + count)]


def logged_ids(project: Project) -> list[str]:
    with Store(project.db_path) as store:
        try:
            return sorted(PredictionLog(project).read(store, "cancer")["request_id"])
        except NotFound:
            return []


def folder(project: Project) -> Path:
    return project.home / "spill" / "predictions" / "cancer"


@pytest.mark.parametrize("kind", ["link", "fifo", "folder"])
def test_a_planted_entry_is_left_alone_and_the_real_files_come_back(project, tmp_path,
                                                                   kind, caplog) -> None:
    outside = tmp_path / "outside.jsonl"
    outside.write_text(json.dumps(rows(100, 1)[0]) + "\n")
    logger = BufferedLogger(project, "cancer")
    logger.add(rows(0, 3))
    logger.spill()
    planted = folder(project) / "spill-00000000T000000-planted.jsonl"
    if kind == "link":
        planted.symlink_to(outside)
    elif kind == "fifo":
        os.mkfifo(planted)  # opening it to read would block without O_NONBLOCK
    else:
        planted.mkdir()
    assert BufferedLogger(project, "cancer").find_spilled() == 3  # as a new start counts
    with caplog.at_level(logging.WARNING, logger="jupyter_mlops.scoring"):
        assert logger.flush() == 3
        assert logger.flush() == 0
    assert logged_ids(project) == ["r0", "r1", "r2"]  # never r100 from the outside file
    assert os.path.lexists(planted) and outside.exists()
    said = [r.getMessage() for r in caplog.records if "not a spill file" in r.getMessage()]
    assert len(said) == 1, said
    assert ("a link" if kind == "link" else "not a regular file") in said[0]
    assert logger.recovery_problem is None


def test_a_spill_folder_that_is_a_link_is_refused_and_the_rows_kept(project,
                                                                    tmp_path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    folder(project).parent.mkdir(parents=True)
    folder(project).symlink_to(outside)
    logger = BufferedLogger(project, "cancer")
    logger.add(rows(0, 2))
    with pytest.raises(SpillFailed, match="a link, not a folder: spill files are never"):
        logger.spill()
    assert list(outside.iterdir()) == []
    assert logger.pending() == 2


def test_spill_files_are_private_whatever_the_umask(project) -> None:
    old = os.umask(0)
    try:
        logger = BufferedLogger(project, "cancer")
        logger.add(rows(0, 1))
        logger.spill()
    finally:
        os.umask(old)
    [spilled] = folder(project).iterdir()
    assert spilled.stat().st_mode & 0o777 == 0o600
    assert folder(project).stat().st_mode & 0o777 == 0o700
