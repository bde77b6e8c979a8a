"""A run that can't be re-executed from its record says so when it ends (the tag
`mlops.not_reproducible`, shown by `runs show`): a notebook's saved execution counts
tell whether its cells ran top to bottom."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mlops import capture
from jupyter_mlops.cli.main import main
from jupyter_mlops.reproduce.readiness import NOT_REPRODUCIBLE_TAG, not_reproducible, order_problem


def code(count: int | None, source: str = "x = 1") -> dict:
    return {"cell_type": "code", "execution_count": count, "source": source, "outputs": [],
            "metadata": {}}


MARKDOWN = {"cell_type": "markdown", "source": "# title", "metadata": {}}


@pytest.mark.parametrize(("cells", "problem"), [
    ([code(1), MARKDOWN, code(2), code(5)], None),  # gaps in counts are fine: reruns
    ([code(1), code(2), code(None)], None),  # the last cells not run yet: fine
    ([code(1), code(None, "  "), code(2)], None),  # an empty cell never counts
    ([code(2), code(1)], "code cell 2 ran before the cell above it (execution counts 2 then 1)"),
    ([code(1), code(3), code(3)], "code cell 3 ran before the cell above it"),
    ([code(1), code(None), code(2)], "code cell 2 did not run, but a later one did"),
    ([code(None), code(None)], "no code cell of the saved notebook has run"),
    ([MARKDOWN, "junk", 5], "no code cell of the saved notebook has run"),
])
def test_order_problems_in_saved_execution_counts(cells, problem) -> None:
    found = order_problem(cells)
    assert found == problem if problem is None else found.startswith(problem)


def test_sources_run_top_to_bottom_are_reproducible(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print(1)\n")
    assert not_reproducible("script", script) is None
    assert not_reproducible("papermill", script) is None
    assert not_reproducible("interactive", None).startswith("an interactive session")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert not_reproducible("jupyter", broken).startswith("the notebook broken.ipynb")


def test_a_notebook_run_out_of_order_is_tagged_and_shown(tracker, project, capsys) -> None:
    notebook = project.root / "explore.ipynb"
    notebook.write_text(json.dumps({"cells": [code(4), code(2, "y = 2")], "metadata": {},
                                    "nbformat": 4, "nbformat_minor": 5}))
    with tracker.start_run("explore", source=capture.Source("jupyter", notebook)) as run:
        pass
    tag = tracker.store.runs.get(run.id).tags[NOT_REPRODUCIBLE_TAG]
    assert tag.startswith("code cell 2 ran before the cell above it")
    assert main(["runs", "show", str(run.id)]) == 0
    out = capsys.readouterr().out
    assert "no, because code cell 2 ran before" in out
    assert "restart the kernel and run all" in out

    notebook.write_text(json.dumps({"cells": [code(1), code(2, "y = 2")], "metadata": {},
                                    "nbformat": 4, "nbformat_minor": 5}))
    with tracker.start_run("in-order", source=capture.Source("jupyter", notebook)) as again:
        pass
    assert NOT_REPRODUCIBLE_TAG not in tracker.store.runs.get(again.id).tags


def test_runs_diff_names_inputs_first_and_the_changed_code_cell(tracker, project, capsys
                                                                ) -> None:
    import jupyter_mlops as mlops

    data = project.root / "data.csv"
    notebook = project.root / "train.ipynb"
    runs = []
    for version, (c, rows) in enumerate([(0.5, "a\n1\n"), (1.0, "a\n1\n2\n")]):
        data.write_text(rows)
        notebook.write_text(json.dumps({"cells": [
            code(1, "import pandas as pd"),
            code(2, f"model = fit(C={c})" if version == 0 else f"model = fit(C={c}, seed=3)"),
        ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        with tracker.start_run(f"train-{version}",
                               source=capture.Source("papermill", notebook)) as run:
            mlops.log_param("C", c)
            mlops.log_dataset(data)
            mlops.log_metric("acc", 0.8 + version / 10)
        runs.append(run.id)
    assert main(["runs", "diff", str(runs[0]), str(runs[1])]) == 0
    out = capsys.readouterr().out
    sections = [line.split()[0] for line in out.splitlines()
                if line.split() and line.split()[0] in ("data", "params", "code", "metrics")]
    assert sections.index("data") < sections.index("params") < sections.index("metrics")
    assert f"--- run {runs[0]}: train.ipynb" in out and f"+++ run {runs[1]}: train.ipynb" in out
    assert "-model = fit(C=0.5)" in out and "+model = fit(C=1.0, seed=3)" in out
    assert " import pandas as pd" in out  # context: the unchanged cell
    assert main(["runs", "diff", str(runs[0]), str(runs[1]), "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["rows"][0]["section"] == "data" and parsed["code_diff"]
    assert main(["runs", "diff", str(runs[0]), "424242"]) == 1
    assert "no run" in capsys.readouterr().err
