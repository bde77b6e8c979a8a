"""`mlops reproduce` attacked and misused: hostile records (from the Python API, a team
server), crafted parameters, interrupted reproductions, team mode, hostile run ids and
huge snapshots for `runs diff`. Each fails with one clear line, or works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from jupyter_mlops import capture
from jupyter_mlops.reproduce.execute import notebook_parameters
from jupyter_mlops.tracking import format_param

from .team import digest_of, team_server

KERNELSPEC = {"kernelspec": {"name": "python3", "language": "python",
                             "display_name": "Python 3"}}


def mlops_cli(root: Path, *args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd or root,
                          env={**os.environ, "MLOPS_HOME": str(root), **(env or {})})


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    cells = [{"cell_type": "code", "source": parameters, "metadata": {"tags": ["parameters"]},
              "outputs": [], "execution_count": None},
             {"cell_type": "code", "source": body, "metadata": {}, "outputs": [],
              "execution_count": None}]
    path.write_text(json.dumps({"cells": cells, "metadata": KERNELSPEC, "nbformat": 4,
                                "nbformat_minor": 5}))
    return path


def run_script(root: Path, name: str, code: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    script = root / name
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


# -- hostile records ------------------------------------------------------------------


def test_an_input_recorded_above_the_project_is_refused_before_anything_runs(
        project, tracker, tmp_path) -> None:
    """A source with `..` (any text may name a dataset) is never read relative to where
    reproduce was started, nor placed above the scratch folder; nothing is executed."""
    (project.root / "d.csv").write_text("x\n1\n")
    ran = run_script(project.root, "named.py",
                     "import jupyter_mlops as mlops\n"
                     "with mlops.start_run('named') as run:\n"
                     "    run.log_dataset('d.csv', name='../outside.csv')\n"
                     "    open('../pwned', 'w').write('ran')\n")
    assert ran.returncode == 0, ran.stderr
    (project.root / "pwned").unlink(missing_ok=True)
    (tmp_path / "pwned").unlink(missing_ok=True)
    [run] = tracker.search_runs()
    below = project.root / "sub"
    below.mkdir()
    (project.root / "outside.csv").write_text("x\n1\n")  # what `../outside.csv` reads from sub/
    done = mlops_cli(project.root, "reproduce", str(run.id), cwd=below)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == (
        f"could not run: run {run.id} (named): input ../outside.csv can't be placed: its "
        "recorded path climbs out of the project (`..`); the run's code can't be "
        "re-executed with it")
    assert len(tracker.search_runs()) == 1 and not (tmp_path / "pwned").exists()


def test_an_input_logged_under_another_name_says_why_it_is_missing(project, tracker) -> None:
    (project.root / "d.csv").write_text("x\n1\n")
    ran = run_script(project.root, "named.py",
                     "import jupyter_mlops as mlops\n"
                     "with mlops.start_run('named') as run:\n"
                     "    run.log_dataset('d.csv', name='training data')\n")
    assert ran.returncode == 0, ran.stderr
    [run] = tracker.search_runs()
    done = mlops_cli(project.root, "reproduce", str(run.id))
    assert done.returncode == 2
    assert "input training data changed: the run read blake3:" in done.stdout
    assert "recorded by that name, not by its path, and reproduce looks for it at " \
           "training data" in done.stdout


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return team_server(request, tmp_path_factory, "sqlite")


def team_env(server, role: str = "writer") -> dict[str, str]:
    return {"MLOPS_URL": server.url, "MLOPS_TOKEN": server.tokens[role]}


def send_run(server, records: list[dict]) -> tuple[int, dict]:
    """Records of one run, sent as a writer's client would; (status, answer)."""
    stream = uuid.uuid4().hex
    start = {"op": "start", "run": {"uuid": stream, "name": "evil",
                                    "started_at": 1_700_000_000.0, "source_kind": "script",
                                    "notebook": "/etc/evil.py"}}
    numbered = [{"seq": seq, "version": 1, **record}
                for seq, record in enumerate([start, *records], 1)]
    answer = server.post("/api/v1/records", "writer",
                         json={"stream": stream, "records": numbered})
    return answer.status_code, answer.json()


def test_hostile_records_from_a_team_server_run_nothing(server, project, tmp_path) -> None:
    """A teammate's records name an input above the project and a notebook outside it;
    a snapshot name that climbs is refused by the server itself."""
    code = b"open('/tmp/never', 'w')\n"
    digest = digest_of(code)
    assert server.request("PUT", f"/api/v1/blobs/{digest}", "writer",
                          data=code).status_code == 200
    snapshot = {"op": "artifact", "name": "source/evil.py", "digest": digest,
                "size": len(code), "kind": "source"}
    climbing = {**snapshot, "name": "source/../../x.py"}
    status, answer = send_run(server, [climbing, {"op": "end", "status": "finished",
                                                  "error": None}])
    assert status == 422 and ".. path segment" in json.dumps(answer), answer
    data = {"digest": digest_of(b"secret"), "kind": "file", "size": 6, "rows": None,
            "schema": None}
    status, answer = send_run(server, [
        snapshot, {"op": "dataset", "dataset": data, "role": "input",
                   "source": "../../outside.txt"},
        {"op": "end", "status": "finished", "error": None}])
    assert status == 200, answer
    done = mlops_cli(project.root, "reproduce", str(answer["run_id"]), env=team_env(server))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "input ../../outside.txt can't be placed: its recorded path climbs out" in \
        done.stdout
    assert not any((project.cache_dir / "reproduce").iterdir())


def test_runs_env_writes_no_pip_option_from_a_teammates_record(server, project) -> None:
    """`mlops runs env RUN > req.txt; pip install -r req.txt`: a package name or version
    in a record is never a pip option line (another index, an editable checkout)."""
    stream = uuid.uuid4().hex
    packages = {"numpy": "1.26.4", "-e git+https://evil.example/x.git#egg=x": "1",
                "--index-url=https://evil.example/simple": "1", "ok": "1.0 --hash=sha256:0",
                "scikit-learn": "1.5.0+cpu"}
    records = [{"op": "start", "run": {"uuid": stream, "name": "env",
                                       "started_at": 1_700_000_000.0, "source_kind": "script"},
                "environment": {"python": "3.11.9", "packages": packages}},
               {"op": "end", "status": "finished", "error": None}]
    answer = server.post("/api/v1/records", "writer", json={"stream": stream, "records": [
        {"seq": seq, "version": 1, **record} for seq, record in enumerate(records, 1)]})
    assert answer.status_code == 200, answer.text
    done = mlops_cli(project.root, "runs", "env", str(answer.json()["run_id"]),
                     env=team_env(server))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if not line.startswith("#")] == [
        "numpy==1.26.4", "scikit-learn==1.5.0+cpu"]
    assert "# left out: 3 recorded entries that are not a package name and version " \
           "(they could be read as pip options)" in lines


# -- team mode -------------------------------------------------------------------------


def test_in_team_mode_a_kept_input_is_restored_from_the_server(server, project) -> None:
    """`keep=True` stores the bytes as a `dataset` artifact, which the server takes (it
    refused the run's whole batch, leaving it `running` forever); reproduce finds the
    new run through the server and compares; a reader's token is told in one line."""
    env = team_env(server)
    (project.root / "rows.csv").write_text("a\n1\n2\n")
    ran = run_script(project.root, "rows.py",
                     "import jupyter_mlops as mlops\n"
                     "with mlops.start_run('rows') as run:\n"
                     "    run.log_dataset('rows.csv', keep=True)\n"
                     "    run.log_metric('rows', len(open('rows.csv').read().split()) - 1)\n",
                     env)
    assert ran.returncode == 0 and "refused" not in ran.stderr, ran.stderr
    listed = json.loads(mlops_cli(project.root, "runs", "ls", "--json", env=env).stdout)
    run = next(r for r in listed if r["name"] == "rows")
    assert run["status"] == "finished"
    (project.root / "rows.csv").write_text("a\n")
    done = mlops_cli(project.root, "reproduce", str(run["id"]), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"reproduced: run {run['id'] + 1} reproduces run "
                                  f"{run['id']} (rows)")
    assert "rows.csv: restored from the artifact store" in done.stdout

    reader = mlops_cli(project.root, "reproduce", str(run["id"]),
                       env=team_env(server, "reader"))
    assert reader.returncode == 2
    assert reader.stdout == (
        f"could not run: run {run['id']} (rows): reproduce records a new run, and the team "
        f"server {server.url} knows this token as 'reader-user' (roles: reader), which "
        "may not record runs: use a writer's or runner's token\n")


def test_a_pipeline_step_keeps_its_input_and_reproduce_restores_it(project, tracker) -> None:
    """`%mlops data PATH --keep` in a step: its glued records were refused (artifact
    kind `dataset`), failing the step."""
    (project.root / "in.txt").write_text("3\n")
    write_notebook(project.root / "count.ipynb", "k = 1",
                   "%load_ext jupyter_mlops\n%mlops start --name count\n"
                   "%mlops data in.txt --keep\n"
                   "total = int(open('in.txt').read()) * k\n%mlops log total\n%mlops end")
    (project.root / "p.yaml").write_text(
        "name: kept\nsteps:\n  count:\n    notebook: count.ipynb\n    params: {k: 2}\n"
        "    inputs: [in.txt]\n")
    ran = mlops_cli(project.root, "pipeline", "run", "p.yaml")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [run] = tracker.search_runs()
    assert run.metrics["total"] == 6.0
    (project.root / "in.txt").write_text("100\n")
    done = mlops_cli(project.root, "reproduce", str(run.id))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in.txt: restored from the artifact store" in done.stdout


def test_a_teammates_run_claiming_to_be_the_reproduction_is_not_taken(server, project
                                                                       ) -> None:
    """A teammate sees the re-execution's run on the server (its tag, its snapshot path)
    and records a newer one claiming the same: reproduce compares only a run recorded
    by its own token's user."""
    env = team_env(server)
    ran = run_script(project.root, "slow_acc.py",
                     "import os, time\nimport jupyter_mlops as mlops\n"
                     "with mlops.start_run('acc') as run:\n"
                     "    run.log_metric('acc', 0.75)\n"
                     "    time.sleep(float(os.environ.get('SLEEP', '0')))\n", env)
    assert ran.returncode == 0, ran.stderr
    listed = json.loads(mlops_cli(project.root, "runs", "ls", "--json", env=env).stdout)
    original = next(r for r in listed if r["name"] == "acc")
    child = subprocess.Popen(
        [sys.executable, "-m", "jupyter_mlops.cli.main", "reproduce", str(original["id"])],
        cwd=project.root, env={**os.environ, "MLOPS_HOME": str(project.root), **env,
                               "SLEEP": "4"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    genuine = None
    while genuine is None:
        assert child.poll() is None, child.communicate()
        seen = mlops_cli(project.root, "runs", "ls", "--json", env=team_env(server, "reader"))
        genuine = next((r for r in json.loads(seen.stdout) if r["id"] > original["id"]
                        and r["name"] == "acc"), None)
    stream = uuid.uuid4().hex
    fake = [{"op": "start", "run": {"uuid": stream, "name": "acc", "started_at": time.time(),
                                    "source_kind": "script",
                                    "notebook": genuine["notebook"]}},
            {"op": "tags", "tags": {capture.REPRODUCES_TAG: original["uuid"]}},
            {"op": "metrics", "points": [["acc", 0.1, None, time.time()]]},
            {"op": "end", "status": "finished", "error": None}]
    answer = server.post("/api/v1/records", "runner", json={"stream": stream, "records": [
        {"seq": seq, "version": 1, **record} for seq, record in enumerate(fake, 1)]})
    assert answer.status_code == 200, answer.text
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, out + err
    assert out.startswith(f"reproduced: run {genuine['id']} reproduces run {original['id']}")


# -- parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("default, value", [
    ("3", 7), ("0.5", 0.125), ("0.5", float("inf")), ("True", False), ("None", None),
    ("[1]", [1, "two", 3.5]), ("{}", {"depth": [1, {"x": True}]}), ("'text'", "12"),
    ("'text'", "__import__('os').system('echo pwned')"), ("'text'", "[1, 2]"),
])
def test_recorded_params_come_back_with_their_type(tmp_path, default, value) -> None:
    notebook = write_notebook(tmp_path / "p.ipynb", f"p = {default}", "pass")
    assert notebook_parameters(notebook, {"p": format_param(value)}) == {"p": value}


def test_crafted_param_text_is_never_evaluated(tmp_path) -> None:
    notebook = write_notebook(tmp_path / "p.ipynb", "n = 3", "pass")
    for text in ("[" * 50_000, "__import__('os').system('echo pwned')", "1" * 5000,
                 "{'a': 1, **x}"):
        assert notebook_parameters(notebook, {"n": text}) == {"n": text}


def test_a_crafted_param_is_injected_as_text(project, tracker) -> None:
    """A string parameter holding code, and a deeply nested list where a number was
    expected (it crashed reproduce with RecursionError): both are text in the kernel."""
    notebook = write_notebook(
        project.root / "p.ipynb", "label = 'x'\ndepth = 0",
        "%load_ext jupyter_mlops\n%mlops start --name crafted\n"
        "kind_ok = float(isinstance(label, str) and isinstance(depth, str))\n"
        "%mlops log kind_ok\n%mlops end")
    label = "\"; open('pwned', 'w'); \"\\'''"
    with tracker.start_run("crafted", source=capture.Source("papermill", notebook)) as run:
        run.log_params({"label": label, "depth": "[" * 5000})  # within the 6000 limit
        run.log_metric("kind_ok", 1.0)
    done = mlops_cli(project.root, "reproduce", str(run.id), "--keep")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"reproduced: run {run.id + 1} reproduces run {run.id}")
    scratch = Path(done.stdout.split("scratch folder kept: ")[1].strip())
    assert not (scratch / "pwned").exists() and not (project.root / "pwned").exists()


HOSTILE_NOTEBOOKS = [
    {"cells": [{"cell_type": "code", "source": "p = " + "-" * 100_000 + "1",
                "metadata": {"tags": ["parameters"]}}]},  # MemoryError in ast.parse
    {"cells": [{"cell_type": "code", "source": "p = " + "+".join(["1"] * 50_000),
                "metadata": {"tags": ["parameters"]}}]},  # RecursionError
    {"cells": [{"cell_type": "code", "source": ["p = 1\n", 5, None],
                "metadata": {"tags": ["parameters"]}}]},
    {"cells": [{"cell_type": "code", "source": "p = 1", "metadata": {"tags": None}}]},
    {"cells": [{"cell_type": "code", "source": "p = 1", "metadata": [1]}]},
    {"cells": 5}, [], "[" * 100_000,
]


@pytest.mark.parametrize("notebook", HOSTILE_NOTEBOOKS, ids=range(len(HOSTILE_NOTEBOOKS)))
def test_a_hostile_snapshot_gives_no_parameters_rather_than_a_crash(tmp_path, notebook
                                                                    ) -> None:
    path = tmp_path / "h.ipynb"
    path.write_text(notebook if isinstance(notebook, str) else json.dumps(notebook))
    assert notebook_parameters(path, {"p": "2"}) in ({}, {"p": 2})


def test_runs_diff_reads_hostile_snapshots(project, tracker) -> None:
    ids = []
    for number, notebook in enumerate(HOSTILE_NOTEBOOKS[2:6]):
        path = project.root / f"h{number}.ipynb"
        path.write_text(json.dumps(notebook))
        with tracker.start_run(f"h{number}", source=capture.Source("script", path)) as run:
            ids.append(run.id)
    for a, b in zip(ids, ids[1:], strict=False):
        done = mlops_cli(project.root, "runs", "diff", str(a), str(b))
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


# -- failures and interruptions ----------------------------------------------------------


def test_a_failed_runs_reproduction_names_both_failures(project, tracker) -> None:
    ran = run_script(project.root, "fails.py",
                     "import jupyter_mlops as mlops\n"
                     "with mlops.start_run('fails'):\n"
                     "    raise ValueError('bad batch')\n")
    assert ran.returncode == 1
    [run] = tracker.search_runs()
    done = mlops_cli(project.root, "reproduce", str(run.id))
    assert done.returncode == 2
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"could not run: run {run.id} (fails): the re-execution failed: "
                            "fails.py exited with status 1:")
    assert done.stdout.rstrip().endswith(f"ValueError: bad batch (run {run.id} itself ended "
                                         "failed: ValueError: bad batch)")


SLOW_CODE = ("import os, time\n"
             "time.sleep(float(os.environ.get('SLEEP', '0')))\n")


@pytest.mark.parametrize("how, kind", [("SIGTERM to reproduce", "script"),
                                       ("Ctrl-C to its process group", "script"),
                                       ("SIGTERM to reproduce", "notebook")])
def test_an_interrupted_reproduction_cleans_up_and_says_so(project, tracker, how, kind
                                                           ) -> None:
    if kind == "script":
        ran = run_script(project.root, "slow.py",
                         "import jupyter_mlops as mlops\n"
                         "with mlops.start_run('slow') as run:\n"
                         "    run.log_metric('a', 1.0)\n"
                         + "".join(f"    {line}\n" for line in SLOW_CODE.splitlines()))
        assert ran.returncode == 0, ran.stderr
    else:
        notebook = write_notebook(project.root / "slow.ipynb", "a = 1",
                                  "%load_ext jupyter_mlops\n%mlops start --name slow\n"
                                  f"{SLOW_CODE}%mlops end")
        ran = subprocess.run([sys.executable, "-m", "papermill", str(notebook),
                              str(project.root / "out.ipynb")], cwd=project.root,
                             capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr
    [run] = tracker.search_runs()
    child = subprocess.Popen(
        [sys.executable, "-m", "jupyter_mlops.cli.main", "reproduce", str(run.id)],
        cwd=project.root, env={**os.environ, "MLOPS_HOME": str(project.root), "SLEEP": "120"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while len(tracker.search_runs()) < 2:  # the re-execution has started its run
        assert child.poll() is None, child.communicate()
        time.sleep(0.1)
    if how.startswith("SIGTERM"):
        child.send_signal(signal.SIGTERM)
    else:
        os.killpg(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, out + err
    assert "interrupted: the scratch folder " in err and " was removed" in err
    assert not any((project.cache_dir / "reproduce").iterdir())
    again = tracker.search_runs()[0]
    assert again.id == run.id + 1 and again.status in ("killed", "failed"), again


def test_in_names_a_folder_that_is_emptied_never_removed(project, tracker, tmp_path
                                                        ) -> None:
    """`--in` through a link to the user's own empty folder: the folder and the link
    stay (the folder was removed, leaving the link dangling); a file, the project
    root and / are refused before anything runs."""
    ran = run_script(project.root, "ok.py", "import jupyter_mlops as mlops\n"
                     "with mlops.start_run('ok') as run:\n    run.log_metric('a', 1.0)\n")
    assert ran.returncode == 0, ran.stderr
    [run] = tracker.search_runs()
    mine = tmp_path / "mine"
    mine.mkdir()
    link = tmp_path / "link"
    link.symlink_to(mine)
    done = mlops_cli(project.root, "reproduce", str(run.id), "--in", str(link))
    assert done.returncode == 0, done.stdout + done.stderr
    assert mine.is_dir() and link.is_symlink() and not any(mine.iterdir())
    for folder, said in ((project.root / "ok.py", "not a folder"),
                         (project.root, "must be new or empty"), (Path("/"), "must be new")):
        refused = mlops_cli(project.root, "reproduce", str(run.id), "--in", str(folder))
        assert refused.returncode == 2 and said in refused.stdout, refused.stdout
    assert len(tracker.search_runs()) == 2  # only the first reproduction ran


@pytest.mark.parametrize("inherited", [
    {"MLOPS_RUN_PARAMS": '{"alpha": 1}'},  # reproduce from a kernel `mlops run -p` started
    {"MLOPS_STEP_OUTBOX": "outbox.json"},  # ... or from a pipeline step's kernel
])
def test_the_re_execution_ignores_what_its_caller_was_told(project, tracker, inherited
                                                          ) -> None:
    ran = run_script(project.root, "ok.py", "import jupyter_mlops as mlops\n"
                     "with mlops.start_run('ok') as run:\n    run.log_metric('a', 1.0)\n")
    assert ran.returncode == 0, ran.stderr
    [run] = tracker.search_runs()
    done = mlops_cli(project.root, "reproduce", str(run.id), env=inherited)
    assert done.returncode == 0, done.stdout + done.stderr
    assert tracker.search_runs()[0].params == {}


def test_a_process_the_script_leaves_running_does_not_hold_reproduce(project, tracker,
                                                                      tmp_path) -> None:
    """The script's output was read from a pipe to its end, which a server or worker it
    started keeps open: reproduce waited for that process to exit."""
    pids = tmp_path / "pids"
    script = project.root / "daemon.py"
    script.write_text("import os, subprocess\nimport jupyter_mlops as mlops\n"
                      "with mlops.start_run('daemon') as run:\n"
                      "    child = subprocess.Popen(['sleep', '600'])\n"
                      "    open(os.environ['PIDS'], 'a').write(f'{child.pid}\\n')\n"
                      "    run.log_metric('a', 1.0)\n")
    try:
        assert subprocess.run([sys.executable, str(script)], cwd=project.root, timeout=120,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PIDS": str(pids)}).returncode == 0
        [run] = tracker.search_runs()
        done = subprocess.run(
            [sys.executable, "-m", "jupyter_mlops.cli.main", "reproduce", str(run.id)],
            cwd=project.root, capture_output=True, text=True, timeout=120,
            env={**os.environ, "MLOPS_HOME": str(project.root), "PIDS": str(pids)})
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(pids.read_text().split()) == 2  # its sleep is still running
    finally:
        for pid in pids.read_text().split():
            try:
                os.kill(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass


def test_a_pipeline_run_with_a_cached_step_and_a_failed_one(project, tracker) -> None:
    """The cached step is reproduced from the run that made its outputs; the failed
    step's re-execution fails again, and says the original failed the same way."""
    write_notebook(project.root / "a.ipynb", "n = 3",
                   "%load_ext jupyter_mlops\n%mlops start --name a\n"
                   "open('a.txt', 'w').write(str(n))\n%mlops log n\n%mlops end")
    write_notebook(project.root / "b.ipynb", "fail = 0",
                   "%load_ext jupyter_mlops\n%mlops start --name b\n"
                   "x = int(open('a.txt').read())\n%mlops log x\n"
                   "assert not fail, 'asked to fail'\n%mlops end")
    (project.root / "p.yaml").write_text(
        "name: pp\nsteps:\n  a:\n    notebook: a.ipynb\n    outputs: [a.txt]\n"
        "  b:\n    notebook: b.ipynb\n    needs: [a]\n    params: {fail: 0}\n"
        "    inputs: [a.txt]\n")
    assert mlops_cli(project.root, "pipeline", "run", "p.yaml").returncode == 0
    failed = mlops_cli(project.root, "pipeline", "run", "p.yaml", "-p", "b.fail=1")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    made_a = next(r for r in tracker.search_runs() if r.name == "pp/a")
    failed_b = tracker.search_runs()[0]
    done = mlops_cli(project.root, "pipeline", "reproduce", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("  a: reproduced (run ")
    assert lines[2] == "  b: could not run"
    assert f"reproduced: run {failed_b.id + 1} reproduces run {made_a.id} (pp/a)" in done.stdout
    assert (f"could not run: run {failed_b.id} (pp/b): the re-execution failed: cell 3 "
            f"raised AssertionError: asked to fail (run {failed_b.id} itself ended failed: "
            ) in done.stdout


# -- runs diff ---------------------------------------------------------------------------


def test_hostile_run_ids_get_one_line(project, tracker) -> None:
    with tracker.start_run("one"):
        pass
    for command in (["runs", "diff", "1", "9" * 5000], ["reproduce", "9" * 5000],
                    ["runs", "diff", "1", "-1"], ["reproduce", "m:" + "9" * 5000]):
        done = mlops_cli(project.root, *command)
        assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr
        said = (done.stdout + done.stderr).strip()
        assert len(said.splitlines()) == 1 and len(said) < 200, said
    for command in (["reproduce", "nobody@production"], ["pipeline", "reproduce", "7"]):
        refused = mlops_cli(project.root, *command, "--json")  # tools get JSON either way
        assert refused.returncode == 2
        assert json.loads(refused.stdout)["verdict"] == "could not run", refused.stdout


def test_a_huge_snapshot_is_not_diffed_line_by_line(project, tracker) -> None:
    from jupyter_mlops.reproduce.diff import MAX_CODE_LINES

    ids = []
    for seed in (1, 2):
        script = project.root / f"big{seed}.py"
        script.write_text("".join(f"x = {(i * seed) % 150}\n"
                                  for i in range(MAX_CODE_LINES + 1)))
        with tracker.start_run(f"big{seed}", source=capture.Source("script", script)) as run:
            ids.append(run.id)
    done = mlops_cli(project.root, "runs", "diff", *map(str, ids))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith(
        f"code: the code of run {ids[0]} and run {ids[1]} has more than {MAX_CODE_LINES} "
        "lines: not diffed (compare the snapshots with a diff tool)")

