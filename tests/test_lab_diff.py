"""Why two runs differ, in JupyterLab: the `runs/diff` route in a real Jupyter server
(pytest-jupyter's jp_fetch), embedded and in team mode, and the compare view's Diff
section in a real JupyterLab driven by Playwright in Debian's chromium."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import nbformat
import pytest
import tornado.httpclient

from jupyter_mlops import capture

from .lab import running_lab
from .team import digest_of, team_server
from .test_lab_team import team_project

pytest_plugins = ("pytest_jupyter.jupyter_server",)

TOKEN = "mlops-diff-token"
HOSTILE = '<img src=x onerror="document.title=1">'  # a stored string shown as text


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_mlops.lab": True}}}


def notebook_of(*sources: str) -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    return nbformat.writes(notebook)


@pytest.fixture
def two_trainings(tracker, project) -> tuple[int, int]:
    """Two runs of train.ipynb (snapshots stored): another C, a changed cell, and a
    training file that grew a row and a column; the second run's `note` is HTML."""
    import jupyter_mlops as mlops

    notebook = project.root / "train.ipynb"
    data = project.root / "train.csv"
    ids = []
    for c, fit, rows in [(0.5, "model = fit(C)", "a\n1\n2\n"),
                         (1.0, "model = fit(C, seed=3)", "a,b\n1,x\n2,y\n3,z\n")]:
        notebook.write_text(notebook_of("import pandas as pd", fit))
        data.write_text(rows)
        with tracker.start_run("train", source=capture.Source("papermill", notebook)) as run:
            mlops.log_param("C", c)
            if c == 1.0:
                mlops.log_param("note", HOSTILE)
            mlops.log_dataset(data)
            mlops.log_metric("acc", c / 2)
        ids.append(run.id)
    return ids[0], ids[1]


async def get(jp_fetch, path: str, **params):
    response = await jp_fetch("jupyter-mlops", "api", path, params=params, method="GET")
    return json.loads(response.body)


async def test_the_diff_route_explains_two_runs(jp_fetch, two_trainings) -> None:
    a, b = two_trainings
    diff = await get(jp_fetch, "runs/diff", a=str(a), b=str(b))
    assert (diff["a"]["id"], diff["b"]["id"]) == (a, b)
    (change,) = diff["data_changes"]
    assert change["source"].endswith("train.csv") and change["rows"] == [2, 3]
    assert change["summary"] == "rows 2 -> 3; columns added: b"
    assert [r["section"] for r in diff["rows"]][0] == "data"
    assert {"C", "acc"} <= {r["key"] for r in diff["rows"]}
    assert "-model = fit(C)" in diff["code_diff"]
    assert "+model = fit(C, seed=3)" in diff["code_diff"]
    assert diff["code_diff_omitted"] == 0 and diff["code_note"] is None


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"a": "1"}, 400, "b must be a run id"),
    ({"a": "1", "b": "x"}, 400, "b must be a run id"),
    ({"a": "../1", "b": "2"}, 400, "a must be a run id"),
    ({"a": "1", "b": "\u00b2"}, 400, "b must be a run id"),
    ({"a": "1", "b": "-2"}, 400, "b must be a run id"),
    ({"a": "1", "b": "9" * 40}, 400, "b must be a run id"),
    ({"a": "1", "b": "999"}, 404, "no run"),
])
async def test_bad_diff_requests_are_json_4xx(jp_fetch, two_trainings, params, status,
                                              message) -> None:
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await jp_fetch("jupyter-mlops", "api", "runs/diff", params=params, method="GET")
    assert info.value.code == status
    body = json.loads(info.value.response.body)
    assert set(body) == {"message"} and message in body["message"], body


def record_training(server, c: str, source: bytes, rows: int) -> int:
    """A finished run recorded through the team server as a writer would send it: a
    parameter, an input dataset and the script's snapshot (its blob uploaded first)."""
    digest = digest_of(source)
    answer = server.request("PUT", f"/api/v1/blobs/{digest}", "writer", data=source)
    assert answer.status_code == 200, answer.text
    dataset = {"digest": digest_of(str(rows).encode()), "kind": "file", "size": rows,
               "rows": rows, "schema": {"a": "int64"}}
    records = [
        {"op": "start", "run": {"uuid": uuid.uuid4().hex, "name": "train",
                                "started_at": 1_700_000_000.0, "source_kind": "script"}},
        {"op": "params", "params": {"C": c}},
        {"op": "dataset", "dataset": dataset, "role": "input", "source": "data/train.csv"},
        {"op": "artifact", "name": "source/train.py", "digest": digest, "size": len(source),
         "kind": "source"},
        {"op": "end", "status": "finished", "error": None}]
    numbered = [{"seq": seq, "version": 1, **record} for seq, record in enumerate(records, 1)]
    answer = server.post("/api/v1/records", "writer",
                         json={"stream": records[0]["run"]["uuid"], "records": numbered})
    assert answer.status_code == 200, answer.text
    return answer.json()["run_id"]


async def test_in_team_mode_the_diff_reads_the_servers_runs_and_snapshots(
        request, tmp_path_factory, jp_fetch, project, monkeypatch) -> None:
    server = team_server(request, tmp_path_factory, "sqlite")
    a = record_training(server, "0.1", b"fit(C)\n", 426)
    b = record_training(server, "0.2", b"fit(C, seed=3)\n", 430)
    team_project(project, server.url)
    monkeypatch.setenv("MLOPS_TOKEN", server.tokens["reader"])
    diff = await get(jp_fetch, "runs/diff", a=str(a), b=str(b))
    assert diff["data_changes"][0]["summary"] == "rows 426 -> 430; same columns"
    assert "-fit(C)" in diff["code_diff"] and "+fit(C, seed=3)" in diff["code_diff"]
    assert any(r["key"] == "C" for r in diff["rows"])


@pytest.fixture
def lab_with_two_trainings(two_trainings, project, tmp_path_factory):
    """JupyterLab on the project, loading this tree's built panel."""
    with running_lab(project.root, TOKEN, tmp_path_factory) as base:
        yield base, two_trainings


def test_the_compare_view_of_two_runs_shows_their_diff(lab_with_two_trainings, browser
                                                       ) -> None:
    base, (a, b) = lab_with_two_trainings
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{base}/lab?token={TOKEN}")
    page.locator('[data-id="jupyter-mlops-sidebar"]').click()
    sidebar = page.locator("#jupyter-mlops-sidebar")
    for run_id in (b, a):  # picked newest first: the diff still reads older -> newer
        sidebar.locator(f'tr.jp-mlops-run[data-run-id="{run_id}"] input[type=checkbox]'
                        ).check(timeout=60000)
    sidebar.get_by_role("button", name="Compare selected (2)").click()
    diff = page.locator(".jp-MainAreaWidget .jp-mlops-compare-view .jp-mlops-diff")
    diff.get_by_text(f"Diff: run {a} → run {b}").wait_for(timeout=30000)
    assert "rows 2 -> 3; columns added: b" in diff.locator("table").first.inner_text()
    rows = [row.locator("td").all_inner_texts() for row in diff.locator("tbody tr").all()]
    assert ["params", "C", "0.5", "1.0"] in rows
    assert diff.get_by_text(HOSTILE).count() == 1 and diff.locator("img").count() == 0
    removed = diff.locator(".jp-mlops-diff-del")
    added = diff.locator(".jp-mlops-diff-add")
    assert removed.all_inner_texts() == ["-model = fit(C)"]
    assert added.all_inner_texts() == ["+model = fit(C, seed=3)"]
    assert diff.locator(".jp-mlops-diff-context", has_text="import pandas as pd").count() == 1
    colours = {kind: diff.locator(f".jp-mlops-diff-{kind}").first.evaluate(
        "node => getComputedStyle(node).backgroundColor") for kind in ("add", "del")}
    assert colours["add"] != colours["del"] and "rgba(0, 0, 0, 0)" not in colours.values()
    shots = os.environ.get("MLOPS_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        diff.scroll_into_view_if_needed()
        page.screenshot(path=str(Path(shots) / "panel-diff.png"))
