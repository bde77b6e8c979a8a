"""The %mlops magics in a real IPython shell."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from jupyter_mlops.kernel_magics.magics import COMMANDS, MlopsMagics, Rendered
from jupyter_mlops.tracking import Tracker


def magic(shell, line: str):
    return shell.run_line_magic("mlops", line)


def test_the_issue_walkthrough(ipython, tracker: Tracker, project) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.to_csv(project.root / "train.csv", index=False)
    (project.root / "reports").mkdir()
    (project.root / "reports" / "confusion.png").write_bytes(b"\x89PNG fake image bytes")
    ipython.user_ns.update(X=X, y=y)
    magic(ipython, "start --name baseline --tag team=churn")
    magic(ipython, "data train.csv")
    magic(ipython, "param C=0.5 max_iter=200")
    ipython.user_ns["clf"] = LogisticRegression(C=0.5, max_iter=200).fit(X, y)
    ipython.user_ns["acc"] = ipython.user_ns["clf"].score(X, y)
    magic(ipython, "log acc")
    magic(ipython, "log loss=0.31 --step 3")
    pd.DataFrame({"p": [0.1, 0.9]}).to_parquet(project.root / "predictions.parquet")
    magic(ipython, "data predictions.parquet --output")
    magic(ipython, "artifact reports/confusion.png")
    magic(ipython, "model clf --name churn")
    run_id = tracker.active_run.id
    magic(ipython, "end")
    run = tracker.get_run(run_id)
    assert run.status == "finished" and run.name == "baseline"
    assert run.params == {"C": "0.5", "max_iter": "200"}
    assert run.metrics == {"acc": pytest.approx(ipython.user_ns["acc"]), "loss": 0.31}
    # the user's tags; mlops.* ones are the tool's (an interactive run is noted as such)
    assert {k: v for k, v in run.tags.items() if not k.startswith("mlops.")} == {"team": "churn"}
    roles = {d.source: d.role for d in tracker.store.datasets.for_run(run_id)}
    assert roles == {"train.csv": "input", "predictions.parquet": "output"}
    names = {a.name for a in tracker.store.artifacts.for_run(run_id)}
    assert {"reports/confusion.png", "models/churn-v1.skops"} <= names
    assert tracker.get_model_version("churn:1").run_id == run_id


def test_dataframe_variables_are_datasets(ipython, tracker: Tracker) -> None:
    ipython.user_ns["frame"] = pd.DataFrame({"a": [1, 2]})
    magic(ipython, "start")
    magic(ipython, "data frame")
    [linked] = tracker.store.datasets.for_run(tracker.active_run.id)
    assert linked.source == "frame" and linked.dataset.kind == "dataframe"


@pytest.mark.parametrize(("line", "message"), [
    ("frobnicate", "unknown subcommand 'frobnicate'"),
    ("log acc", "no active run"),
    ("start --name", "expected one argument"),
    ("start --bogus", "unrecognized arguments"),
    ("runs --filter 'metrics.acc >'", "bad filter"),
    ("show 424242", "no run with id 424242"),
    ("compare 1", "at least two runs"),
    ("start 'unclosed", "cannot parse"),
])
def test_user_errors_are_one_line_usage_errors(ipython, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        magic(ipython, line)


@pytest.mark.parametrize(("line", "message"), [
    ("log acc=high", "must be a number"),
    ("log nothing_here", "not a variable"),
    ("log loss=1 --step x", "invalid int value"),
    ("data ../../etc/missing.csv", "no file or folder"),
    ("artifact missing.png", "no file or folder"),
    ("artifact f.txt --name ../../evil", "refused"),
    ("model nothing --name m", "no variable 'nothing'"),
    ("model frame --name m", "scikit-learn"),
    ("model clf --name '<script>'", "model name"),
    ("param C=1 C", "not a variable"),
])
def test_bad_input_inside_a_run(ipython, tracker: Tracker, project, line: str,
                                message: str) -> None:
    (project.root / "f.txt").write_text("x")
    ipython.user_ns["frame"] = pd.DataFrame({"a": [1]})
    ipython.user_ns["clf"] = LogisticRegression()
    ipython.user_ns.pop("C", None)
    magic(ipython, "start")
    with pytest.raises(UsageError, match=message):
        magic(ipython, line)
    assert tracker.active_run is not None and not tracker.active_run.ended


def test_help_lists_every_subcommand_and_each_has_help(ipython, shown, capsys) -> None:
    magic(ipython, "help")
    text = shown[0][0]
    for name in COMMANDS:
        assert name in text
        magic(ipython, f"{name} --help")
        out = capsys.readouterr().out
        assert f"%mlops {name}" in out and "usage" in out


def test_runs_and_compare_render_html_and_text(ipython, store_with_runs, shown) -> None:
    magic(ipython, "runs --static")
    magic(ipython, "compare 1 2")
    magic(ipython, "compare 1 2 --diff")
    runs_view, comparison, diff_only = shown
    assert "<table" in runs_view[1] and "run-2" in runs_view[0]
    assert comparison[1].count("background") >= 3  # name, C, acc differ
    assert "solver" in comparison[0] and "solver" not in diff_only[0]
    assert "* " in comparison[0]


def test_diff_explains_two_runs_with_escaped_html(ipython, tracker, shown) -> None:
    for c in (0.5, 1.0):
        run = tracker.start_run(f"<b>C={c}</b>")
        run.log_params({"C": c})
        run.end()
    magic(ipython, f"diff {run.id - 1} {run.id}")
    [(text, html)] = shown
    assert "params" in text and "0.5" in text and "1.0" in text
    assert "<b>C=0.5</b>" in text  # the names differ, shown as text
    assert html.startswith("<pre>") and "<b>" not in html and "&lt;b&gt;C=0.5" in html


def test_user_strings_are_escaped_in_html(ipython, tracker) -> None:
    run = tracker.start_run("<script>alert(1)</script>")
    run.log_params({"<b>": "<img src=x onerror=alert(1)>"})
    run.end()
    from jupyter_mlops.inspection import describe_run
    from jupyter_mlops.views import run_detail_html, runs_html

    for html in (runs_html(tracker.search_runs()), run_detail_html(describe_run(tracker.store,
                                                                                run.id))):
        assert "<script>" not in html and "<img" not in html
        assert "&lt;script&gt;" in html or "&lt;img" in html


def test_runs_browser_filters_and_compares(store_with_runs) -> None:
    from jupyter_mlops.kernel_magics.runs_browser import RunsBrowser

    browser = RunsBrowser(store_with_runs, limit=10)
    assert len(browser.picker.options) == 3
    browser.filter_box.value = "metrics.acc > 0.85"
    assert [value for _, value in browser.picker.options] == [3, 2]
    browser.filter_box.value = "metrics.acc >"
    assert "bad filter" in browser.message.value
    assert [value for _, value in browser.picker.options] == [3, 2]  # kept, not lost
    browser.picker.value = (3,)
    browser.compare_selected()
    assert "pick two" in browser.comparison.value
    browser.picker.value = (3, 2)
    browser.compare_selected()
    assert "run 3" in browser.comparison.value and "<table" in browser.comparison.value


def test_options_are_configurable(ipython) -> None:
    magics = ipython.magics_manager.registry["MlopsMagics"]
    assert isinstance(magics, MlopsMagics)
    ipython.run_line_magic("config", "MlopsMagics.max_rows = 2")
    assert magics.max_rows == 2
    ipython.run_line_magic("config", "MlopsMagics.max_rows = 20")


def test_a_raising_cell_is_remembered_for_exit(ipython, tracker) -> None:
    magic(ipython, "start")
    ipython.run_cell("1 / 0")
    assert "ZeroDivisionError" in tracker.last_error
    ipython.run_cell("x = 1")
    assert tracker.last_error is None
    ipython.run_cell("raise ValueError('bad data')")
    tracker._end_at_exit()
    run = tracker.get_run(tracker.search_runs(limit=1)[0].id)
    assert run.status == "failed" and "bad data" in run.error


def test_rendered_has_text_and_html() -> None:
    shown = Rendered("plain", "<b>html</b>")
    assert repr(shown) == "plain" and shown._repr_html_() == "<b>html</b>"


def test_init_creates_a_project_and_records_into_it(ipython, tracker, tmp_path) -> None:
    target = tmp_path / "elsewhere"
    magic(ipython, f"init {target}")
    assert (target / ".mlops" / "mlops.db").exists()
    magic(ipython, "start --name there")
    assert tracker.project.root == target.resolve()
    magic(ipython, "end")


def test_no_project_tells_how_to_make_one(ipython, tmp_path_factory, monkeypatch) -> None:
    monkeypatch.delenv("MLOPS_HOME")
    monkeypatch.chdir(tmp_path_factory.mktemp("no-project"))  # not under the fixture project
    magics = ipython.magics_manager.registry["MlopsMagics"]
    monkeypatch.setattr(magics, "tracker", Tracker())
    with pytest.raises(UsageError, match="%mlops init"):
        magic(ipython, "start")
