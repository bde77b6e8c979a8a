"""A reused (cached) step leaves exactly the bytes its cached execution wrote in each
declared output: a file that differs (another parameter's run, an edit by hand) is
restored from the artifact store before the step is reported cached, so the steps
after it read the right bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jupyter_mlops.artifacts import ArtifactStore
from jupyter_mlops.project import Project

from .test_pipeline_runs import FIXTURES, _statuses, run_pipeline


@pytest.fixture
def chain(project: Project) -> Path:
    """make (writes `n` numbers to out/numbers.txt, a declared output) -> use (reads it)."""
    for name in ("make.ipynb", "use.ipynb", "chain.yaml"):
        shutil.copy(FIXTURES / name, project.root / name)
    return project.root / "chain.yaml"


NUMBERS = {3: b"0\n1\n2\n", 4: b"0\n1\n2\n3\n"}
MAKE = """\
name: make
params: {n: 3}
steps:
  make:
    notebook: make.ipynb
    params: {out: out/numbers.txt}
    outputs: [out/numbers.txt]
"""


@pytest.fixture
def make(chain: Path) -> Path:
    """The chain's first step alone: its cache key is the same as in the chain."""
    spec = chain.parent / "make.yaml"
    spec.write_text(MAKE)
    return spec


def test_alternating_parameters_never_leave_another_runs_output(project: Project, chain: Path,
                                                                make: Path) -> None:
    """The issue's case: runs with two values, then each again; every cached run must
    leave its own file, and a step after it must read that file."""
    output = project.root / "out" / "numbers.txt"
    for n in (3, 4):
        _, steps = run_pipeline(project, make, overrides=[f"n={n}"])
        assert steps["make"].status == "finished" and output.read_bytes() == NUMBERS[n]
    lines: list[str] = []
    _, steps = run_pipeline(project, make, overrides=["n=3"], progress=lines.append)
    assert steps["make"].status == "cached"
    assert output.read_bytes() == NUMBERS[3]  # was run n=4's file
    assert any(line.startswith("  = make: cached (run ") and
               line.endswith("; restored out/numbers.txt from the artifact store")
               for line in lines), lines
    # `use` executes after the cached `make` and reads its file (it asserts the length).
    outcome, steps = run_pipeline(project, chain, overrides=["n=4"])
    assert _statuses(steps) == {"make": "cached", "use": "finished"}, outcome.steps["use"].error
    assert output.read_bytes() == NUMBERS[4] and steps["use"].outputs == {"total": 6}
    lines.clear()
    _, steps = run_pipeline(project, chain, overrides=["n=4"], progress=lines.append)
    assert _statuses(steps) == {"make": "cached", "use": "cached"}
    assert not [line for line in lines if "restored" in line]  # unchanged: nothing to do

    output.write_bytes(b"0\n1\n7\n3\n")  # edited by hand: same size, other bytes
    lines.clear()
    _, steps = run_pipeline(project, chain, overrides=["n=4"], progress=lines.append)
    assert _statuses(steps) == {"make": "cached", "use": "cached"}
    assert output.read_bytes() == NUMBERS[4]
    assert any("restored out/numbers.txt" in line for line in lines), lines


def test_an_output_that_cannot_be_restored_re_executes_the_step(project: Project,
                                                                make: Path) -> None:
    """The blob is gone from the artifact store (removed by hand): the step runs again
    instead of being reported cached over a wrong file."""
    _, first = run_pipeline(project, make)
    ArtifactStore(project.artifacts_dir).path_for(
        first["make"].output_files["out/numbers.txt"]).unlink()
    (project.root / "out" / "numbers.txt").write_bytes(b"stale\n")
    lines: list[str] = []
    _, steps = run_pipeline(project, make, progress=lines.append)
    assert steps["make"].status == "finished"
    assert (project.root / "out" / "numbers.txt").read_bytes() == NUMBERS[3]
    assert any(line.startswith("  ~ make: not reused (run ") and "could not be" in line
               for line in lines), lines


def test_a_folder_output_that_differs_re_executes_the_step(project: Project,
                                                           make: Path) -> None:
    """A folder's files are not kept, so a folder that differs can't be restored."""
    make.write_text(MAKE.replace("outputs: [out/numbers.txt]", "outputs: [out]"))
    run_pipeline(project, make)
    _, steps = run_pipeline(project, make)
    assert steps["make"].status == "cached"
    (project.root / "out" / "extra.txt").write_text("left behind by something else")
    lines: list[str] = []
    _, steps = run_pipeline(project, make, progress=lines.append)
    assert steps["make"].status == "finished"
    assert any("the folder out differs from what it wrote" in line for line in lines), lines
