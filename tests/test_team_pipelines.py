"""Pipelines in a team-mode project, against a real `mlops server`: the steps glue their
records as always, the runner replays them into the server (one stream per step run)
and keeps the pipeline run and the step cache there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jupyter_mlops.cli.main import main
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store

from .conftest import NOTEBOOKS
from .team import team_server

FIXTURES = NOTEBOOKS / "pipeline"


@pytest.fixture(scope="module")
def team(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite")


@pytest.fixture
def chain(project: Project, team, monkeypatch) -> Path:
    """The two-step example-style pipeline (make writes a file and glues values, use
    reads them) in a project recording into `team` with the runner's token."""
    for name in ("make.ipynb", "use.ipynb", "chain.yaml"):
        shutil.copy(FIXTURES / name, project.root / name)
    monkeypatch.setenv("MLOPS_URL", team.url)
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["runner"])
    return project.root / "chain.yaml"


def server_store(team) -> Store:
    """The server's own database, opened beside it (as the dashboard does)."""
    return Store(team.db_url, audit_key_path=team.home / "audit.key")


def test_a_pipeline_runs_into_the_server_and_a_second_run_is_cached(chain, team, project,
                                                                      capsys):
    assert main(["pipeline", "run", str(chain)]) == 0, capsys.readouterr()
    first = capsys.readouterr().out
    assert "finished" in first
    with Store(project.db_path) as local:  # nothing went to the embedded store
        assert local.pipelines.recent() == []

    with server_store(team) as store:
        [pipeline_run] = store.pipelines.recent("chain", limit=5)
        steps = {s.step: s for s in pipeline_run.steps}
        assert pipeline_run.status == "finished"
        assert {name: s.status for name, s in steps.items()} == {"make": "finished",
                                                                  "use": "finished"}
        assert steps["make"].outputs == {"count": 3, "path": "out/numbers.txt"}
        assert steps["use"].outputs == {"total": 3}
        make = store.runs.get(steps["make"].run_id)
        assert make.status == "finished" and make.source_kind == "pipeline"
        assert make.user == "runner-user"  # the token's user, whoever the client said
        assert make.params == {"n": "3", "out": "out/numbers.txt"}
        assert make.metrics == {"n": 3.0}
        assert make.tags["mlops.step"] == "make"
        assert make.tags["mlops.pipeline_run"] == str(pipeline_run.id)
        assert make.tags["mlops.notebook_run_name"] == "make"
        assert make.tags["mlops.kernel"] == "warm"  # a runner's tag, through the server
        kinds = {a.name: a.kind for a in store.artifacts.for_run(make.id)}
        assert kinds["executed/make.ipynb"] == "notebook"
        assert kinds["report/make.html"] == "report"
        [output] = [d for d in store.datasets.for_run(make.id) if d.role == "output"]
        assert steps["make"].output_files == {"out/numbers.txt": output.dataset.digest}
        use = store.runs.get(steps["use"].run_id)
        assert use.params == {"count": "3", "path": "out/numbers.txt"}

    # the runs appear in `mlops runs ls` through the server
    assert main(["runs", "ls"]) == 0
    listed = capsys.readouterr().out
    assert "chain/make" in listed and "chain/use" in listed

    # `mlops pipeline show` plans from the server's cache
    assert main(["pipeline", "show", str(chain)]) == 0
    assert capsys.readouterr().out.count("cached (run") == 2

    # a second run is served from the cache the server keeps; a missing output is
    # restored from the server's blobs
    output = project.root / "out" / "numbers.txt"
    original = output.read_bytes()
    output.unlink()
    assert main(["pipeline", "run", str(chain)]) == 0
    capsys.readouterr()
    assert output.read_bytes() == original
    with server_store(team) as store:
        second, first_run = store.pipelines.recent("chain", limit=2)
        assert {s.step: s.status for s in second.steps} == {"make": "cached",
                                                            "use": "cached"}
        assert {s.step: s.run_id for s in second.steps} == \
            {s.step: s.run_id for s in first_run.steps}

    # and `mlops pipeline runs` reads them from the server too
    assert main(["pipeline", "runs", "--name", "chain"]) == 0
    assert "make:cached use:cached" in capsys.readouterr().out


def test_a_failing_step_is_recorded_on_the_server(chain, team, capsys):
    assert main(["pipeline", "run", str(chain), "-p", "use.fail=true"]) == 1
    capsys.readouterr()
    with server_store(team) as store:
        latest = store.pipelines.recent("chain", limit=1)[0]
        steps = {s.step: s for s in latest.steps}
        assert latest.status == "failed"
        assert steps["use"].status == "failed"
        assert steps["use"].failure.kind == "notebook"
        assert "asked to fail" in steps["use"].failure.evalue
        assert store.runs.get(steps["use"].run_id).status == "failed"


def test_a_token_without_the_pipeline_permission_runs_nothing(chain, team, capsys,
                                                              monkeypatch):
    monkeypatch.setenv("MLOPS_TOKEN", team.tokens["reviewer"])
    assert main(["pipeline", "run", str(chain)]) == 1
    err = capsys.readouterr().err
    assert "'pipeline' permission" in err and "Traceback" not in err


def test_a_step_records_into_its_own_users_run_only(team):
    stream = "ab" * 16
    started = team.post("/api/v1/records", "writer", json={"stream": stream, "records": [
        {"seq": 1, "version": 1, "op": "start",
         "run": {"uuid": stream, "name": "writers-run", "started_at": 1.7e9}}]})
    assert started.status_code == 200, started.text
    writers_run = started.json()["run_id"]
    begun = team.post("/api/v1/pipelines", "runner", json={"call": "start", "args": {
        "name": "p", "spec_path": "p.yaml", "spec_digest": "blake3:" + "0" * 64,
        "trigger": "manual", "steps": ["a"]}})
    assert begun.status_code == 200, begun.text
    pipeline_run = begun.json()["result"]
    for call, args in [("update_step", {"pipeline_run_id": pipeline_run, "step": "a",
                                        "status": "running", "run_id": writers_run}),
                       ("set_run_tags", {"run_id": writers_run,
                                         "tags": {"mlops.step": "a"}})]:
        answer = team.post("/api/v1/pipelines", "runner", json={"call": call, "args": args})
        assert answer.status_code == 403, answer.text
    reused = team.post("/api/v1/pipelines", "runner", json={"call": "update_step", "args": {
        "pipeline_run_id": pipeline_run, "step": "a", "status": "cached",
        "run_id": writers_run}})
    assert reused.status_code == 200, reused.text


def test_the_scheduler_runs_a_due_pipeline_into_the_server(chain, team, project):
    """`mlops schedule run`'s loop on a team-mode project: when a pipeline is due, whether
    it runs already and when it last ran are the server's answers."""
    from datetime import datetime

    from jupyter_mlops.pipelines.runner import PipelineRunner
    from jupyter_mlops.pipelines.schedule import run_scheduler
    from jupyter_mlops.pipelines.spec import load_spec
    from jupyter_mlops.remote.client import Client
    from jupyter_mlops.remote.store import RemoteStore

    chain.write_text(chain.read_text().replace("name: chain", "name: nightly\n"
                                               "schedule: '0 3 * * *'"))

    def at(text: str) -> float:
        return datetime.fromisoformat(text).astimezone().timestamp()

    with RemoteStore(Client(team.url, team.tokens["runner"])) as store:
        def run_pipeline(spec) -> None:
            PipelineRunner(spec, project, store, trigger="schedule").run()

        clock = iter([at("2026-11-26T01:00"), at("2026-11-26T10:00")])
        assert run_scheduler(lambda: [load_spec(chain, project.root)], store, run_pipeline,
                             once=True, log=print, clock=lambda: next(clock)) == 1
        clock = iter([at("2026-11-26T01:00"), at("2026-11-26T10:00")])
        assert run_scheduler(lambda: [load_spec(chain, project.root)], store, run_pipeline,
                             once=True, log=print, clock=lambda: next(clock)) == 0
    with server_store(team) as store:
        [scheduled] = store.pipelines.recent("nightly")
        assert scheduled.trigger == "schedule" and scheduled.status == "finished"
