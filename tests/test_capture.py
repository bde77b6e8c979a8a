from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_mlops import capture


def test_jupyterlab_session_name_gives_the_notebook(tmp_path: Path, monkeypatch) -> None:
    notebook = tmp_path / "work" / "explore.ipynb"
    notebook.parent.mkdir()
    notebook.write_text("{}")
    source = capture.detect_source({"JPY_SESSION_NAME": str(notebook)})
    assert source == capture.Source("jupyter", notebook)
    monkeypatch.chdir(notebook.parent)  # older servers: relative to the server root
    source = capture.detect_source({"JPY_SESSION_NAME": "work/explore.ipynb"})
    assert source.kind == "jupyter" and source.path == notebook


def test_explicit_notebook_wins(tmp_path: Path) -> None:
    env = {"MLOPS_NOTEBOOK_PATH": str(tmp_path / "a.ipynb"), "JPY_SESSION_NAME": "b.ipynb"}
    assert capture.detect_source(env) == capture.Source("papermill", tmp_path / "a.ipynb")


def test_outside_git_there_is_no_git_state(tmp_path: Path) -> None:
    assert capture.git_state(tmp_path) is None


def test_environment_digest_is_stable() -> None:
    first, second = capture.environment(), capture.environment()
    assert first.digest == second.digest and first.digest.startswith("blake3:")
    assert "blake3" in first.packages


@pytest.mark.parametrize("broken", ["not json", '{"cells": 3}'])
def test_unreadable_notebooks_have_no_digest(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text(broken)
    assert capture.code_digest(capture.Source("jupyter", path)) is None


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@l", *args],
                   check=True, capture_output=True)


def _settle() -> None:
    """Wait until what changed is older than the cache's `settled_seconds` below."""
    time.sleep(0.2)


def test_capture_cache_asks_git_again_when_the_index_changes(tmp_path: Path,
                                                             monkeypatch) -> None:
    """Whether the notebook is tracked is kept between runs, but `git add` is seen."""
    _git(tmp_path, "init", "-q")
    notebook = tmp_path / "train.ipynb"
    for path in (tmp_path / "other.txt", notebook):
        path.write_text("x")
        past = time.time() - 60  # else git rewrites its index at each status for a second
        os.utime(path, (past, past))  # ("racily clean" files): no answer could be kept
    _git(tmp_path, "add", "other.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    asked = []

    def counted(cwd: Path, source: Path) -> bool | None:
        asked.append(source)
        return real(cwd, source)

    real = capture.source_tracked
    monkeypatch.setattr(capture, "source_tracked", counted)
    cache = capture.CaptureCache(settled_seconds=0.1)
    steps = [((), False, True), (("add", "train.ipynb"), True, True),  # staged: still dirty
             (("commit", "-q", "-m", "two"), True, False),
             (("rm", "-q", "--cached", "train.ipynb"), False, True)]
    for command, tracked, dirty in steps:
        if command:
            _git(tmp_path, *command)
        for _ in range(2):  # asked (the index just changed), then kept: both the truth
            state = cache.git_state(tmp_path, notebook)
            assert state is not None and (state.source_tracked, state.dirty) == (tracked, dirty)
            _settle()
        before = len(asked)
        state = cache.git_state(tmp_path, notebook)
        assert state is not None and (state.source_tracked, state.dirty) == (tracked, dirty)
        assert len(asked) == before  # the settled index's answer, kept


def test_capture_cache_sees_a_package_installed_or_removed(tmp_path: Path,
                                                           monkeypatch) -> None:
    """The packages are read again when a folder on sys.path changes, never stale."""
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    cache = capture.CaptureCache(settled_seconds=0.1)
    before = cache.environment()
    assert "mlops-probe" not in before.packages
    _settle()
    kept = cache.environment()
    assert cache.environment() is kept and kept.digest == before.digest  # settled: kept
    (tmp_path / "mlops_probe-1.0.dist-info").mkdir()
    assert cache.environment() is not kept  # just changed: not trusted, read again
    installed = cache.environment()
    assert installed.packages["mlops-probe"] == "1.0"
    assert installed.digest != before.digest
    (tmp_path / "mlops_probe-1.0.dist-info").rename(tmp_path / "mlops_probe-2.0.dist-info")
    assert cache.environment().packages["mlops-probe"] == "2.0"
    (tmp_path / "mlops_probe-2.0.dist-info").rmdir()
    assert cache.environment().digest == before.digest
