from __future__ import annotations

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
