"""`mlops runs diff A B` explains a changed dataset by its shape: row counts and columns
added, removed or retyped, from what the store recorded of each dataset version."""

from __future__ import annotations

import json

import pytest

from jupyter_mlops import capture
from jupyter_mlops.cli.main import main
from jupyter_mlops.reproduce.diff import data_changes
from jupyter_mlops.store.records import DatasetVersion, RunDataset


def used(source: str, digest: str, rows: int | None, schema: dict | None,
         role: str = "input", size: int | None = 10) -> RunDataset:
    return RunDataset(DatasetVersion(digest, "file", size, rows, schema), role, source)


@pytest.mark.parametrize(("a", "b", "summary"), [
    (used("t.csv", "d1", 426, {"x": "int64", "y": "str", "z": "int64"}),
     used("t.csv", "d2", 430, {"x": "int64", "z": "float64", "w": "str"}),
     "rows 426 -> 430; columns added: w; columns removed: y; type changed: z int64 -> float64"),
    (used("t.csv", "d1", 5, {"x": "int64"}), used("t.csv", "d2", 5, {"x": "int64"}),
     "values changed; same rows (5) and columns"),
    (used("t.csv", "d1", 5, {"x": "int64"}), used("t.csv", "d2", 6, {"x": "int64"}),
     "rows 5 -> 6; same columns"),
    (used("t.csv", "d1", None, None), used("t.csv", "d2", 6, {"x": "int64"}),
     "rows not recorded; size 10 -> 10 bytes; schema not recorded"),
    (used("t.csv", "d1", 5, None, size=None), used("t.csv", "d2", 6, None),
     "rows 5 -> 6; schema not recorded"),
    (used("t.csv", "d1", None, None, size=None), used("t.csv", "d2", None, None),
     "rows not recorded; schema not recorded"),
    (used("t.csv", "d1", 5, None), None, "only in run 1 (5 rows)"),
    (None, used("t.csv", "d2", None, None), "only in run 2"),
])
def test_a_changed_dataset_is_explained_by_its_shape(a, b, summary) -> None:
    (change,) = data_changes([a] if a else [], [b] if b else [], (1, 2))
    assert change.summary == summary
    assert change.digests == (a and a.dataset.digest, b and b.dataset.digest)


def test_same_digests_are_no_change_and_inputs_come_before_outputs() -> None:
    a = [used("same.csv", "d", 1, None), used("out.csv", "o1", 1, None, "output"),
         used("in.csv", "i1", 1, None)]
    b = [used("same.csv", "d", 1, None), used("out.csv", "o2", 2, None, "output"),
         used("in.csv", "i2", 2, None)]
    assert [(c.role, c.source) for c in data_changes(a, b, (1, 2))] == [
        ("input", "in.csv"), ("output", "out.csv")]


def test_runs_diff_shows_row_count_and_schema_changes(tracker, project, capsys) -> None:
    import jupyter_mlops as mlops

    data = project.root / "train.csv"
    scores = project.root / "scores.csv"
    script = project.root / "train.py"
    script.write_text("print('train')\n")
    runs = []
    for content, out in [("a,b\n1,x\n2,y\n", "s\n1\n"), ("a,c\n1.5,3\n2.5,4\n3.5,5\n", "s\n2\n")]:
        data.write_text(content)
        scores.write_text(out)
        with tracker.start_run("train", source=capture.Source("script", script)) as run:
            mlops.log_dataset(data)
            mlops.log_dataset(scores, role="output")
        runs.append(run.id)
    assert main(["runs", "diff", str(runs[0]), str(runs[1])]) == 0
    out = capsys.readouterr().out
    first_line = next(line for line in out.splitlines() if "train.csv" in line)
    assert first_line.split()[:2] == ["input", "train.csv"]
    assert ("rows 2 -> 3; columns added: c; columns removed: b; type changed: a int64 -> float64"
            in first_line)
    assert "values changed; same rows (1) and columns" in out  # scores.csv: 1 -> 2
    assert out.index("train.csv") < out.index("scores.csv")

    assert main(["runs", "diff", str(runs[0]), str(runs[1]), "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    train, written = parsed["data_changes"]
    assert train["role"] == "input" and train["source"].endswith("train.csv")
    assert train["rows"] == [2, 3]
    assert train["columns_added"] == ["c"] and train["columns_removed"] == ["b"]
    assert train["types_changed"] == [{"column": "a", "a": "int64", "b": "float64"}]
    assert written["role"] == "output" and written["rows"] == [1, 1]
    assert parsed["rows"][0]["section"] == "data"
