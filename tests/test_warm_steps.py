"""Warm steps (issue 16): kernels forked from a template process, for real.

Each step still runs in a fresh kernel process with nothing from another step;
where forking is unavailable or unsafe the step starts cold and its run says why;
the template follows the environment and never outlives its runner.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jupyter_mlops.errors import InvalidInput
from jupyter_mlops.pipelines import warm
from jupyter_mlops.pipelines.executors import LocalExecutor
from jupyter_mlops.pipelines.runner import KERNEL_TAG, PipelineRunner
from jupyter_mlops.pipelines.spec import load_spec
from jupyter_mlops.pipelines.warm import WarmStart, notebook_imports, preload_modules
from jupyter_mlops.project import Project
from jupyter_mlops.store import Store

from .conftest import NOTEBOOKS
from .helpers import alive, descendants, wait_for

FIXTURES = NOTEBOOKS / "warm"
ONE_STEP = "name: {name}\nsteps:\n  only:\n    notebook: {notebook}\n"


def run_pipeline(project: Project, spec_path: Path, **kwargs):
    """Run; return the outcome and each step's (outputs, kernel tag)."""
    with Store(project.db_path) as store:
        outcome = PipelineRunner(load_spec(spec_path, project.root), project, store,
                                 **kwargs).run()
        steps = {}
        for step in store.pipelines.get(outcome.pipeline_run_id).steps:
            tags = store.runs.get(step.run_id).tags if step.run_id else {}
            steps[step.step] = (step.outputs, tags.get(KERNEL_TAG))
    assert outcome.ok, {s: o.error for s, o in outcome.steps.items()}
    return outcome, steps


def notebook_step(project: Project, name: str, source: str) -> Path:
    """A one-step pipeline `name` running a one-cell notebook of `source`; its spec."""
    write_notebook(project.root / f"{name}.ipynb", source)
    spec = project.root / f"{name}.yaml"
    spec.write_text(ONE_STEP.format(name=name, notebook=f"{name}.ipynb"))
    return spec


def on_pythonpath(monkeypatch, folder: Path) -> None:
    """Kernels and templates started from now on import from `folder` first."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]))


def run_with_its_template(project: Project, spec_path: Path) -> tuple[dict, warm.TemplateInfo]:
    """Run on an executor of its own; each step's (outputs, kernel tag), and what its
    template preloaded and skipped."""
    executor = LocalExecutor()
    try:
        _, steps = run_pipeline(project, spec_path, executor=executor)
        return steps, executor.warm._template.info()
    finally:
        executor.close()


def one_step(project: Project, notebook: str, name: str = "one") -> Path:
    shutil.copy(FIXTURES / notebook, project.root / notebook)
    spec = project.root / f"{name}.yaml"
    spec.write_text(ONE_STEP.format(name=name, notebook=notebook))
    return spec


def test_a_step_sees_nothing_of_the_step_before_it(project: Project) -> None:
    """The first step sets a global, changes sklearn's config, patches a module both
    steps import (preloaded in the template), chdirs, leaves a file open and draws a
    random number; the second, forked from the same template, sees none of it."""
    for name in ("dirty.ipynb", "clean.ipynb", "isolation.yaml"):
        shutil.copy(FIXTURES / name, project.root / name)
    _, steps = run_pipeline(project, project.root / "isolation.yaml")
    (dirty, dirty_start), (clean, clean_start) = steps["dirty"], steps["clean"]
    assert dirty_start == "warm" and clean_start == "warm"
    assert clean["checks"] == {"global": False, "assume_finite": False,
                               "patched_attribute": False, "patched_function": False,
                               "cwd": str(project.root), "open_file": False}
    # the first did all that; what it wrote and never flushed was written at its exit,
    # as in a kernel whose interpreter tears down
    assert (project.root / "elsewhere" / "left-open.txt").read_text() == \
        "written, never flushed"
    assert dirty["pid"] != clean["pid"]  # a fresh process each
    assert dirty["draw"] != clean["draw"]  # numpy reseeded in each: not the template's


def test_the_same_pipeline_cold_gives_the_same_outputs(project: Project) -> None:
    for name in ("dirty.ipynb", "clean.ipynb", "isolation.yaml"):
        shutil.copy(FIXTURES / name, project.root / name)
    _, steps = run_pipeline(project, project.root / "isolation.yaml", cold=True)
    assert steps["clean"][0]["checks"]["global"] is False
    assert steps["dirty"][1] == steps["clean"][1] == "cold: asked for (--cold)"


def test_cli_cold_flag(project: Project) -> None:
    spec = one_step(project, "clean.ipynb")
    done = subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline", "run",
                           str(spec), "--cold"], cwd=project.root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "kernel cold: asked for (--cold)" in done.stderr
    with Store(project.db_path) as store:
        [run] = store.pipelines.recent("one")
        assert store.runs.get(run.steps[0].run_id).tags[KERNEL_TAG] == \
            "cold: asked for (--cold)"


def test_another_kernel_than_python3_starts_cold(project: Project, tmp_path_factory,
                                                 monkeypatch) -> None:
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels" / "other-python"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Another Python", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(kernels.parent.parent))
    _, steps = run_pipeline(project, one_step(project, "other_kernel.ipynb"))
    outputs, start = steps["only"]
    assert outputs == {"ran": True}
    assert start == "cold: the notebook's kernel is 'other-python', not python3"


def test_an_import_that_starts_a_thread_makes_steps_start_cold(project: Project,
                                                                tmp_path_factory,
                                                                monkeypatch) -> None:
    library = tmp_path_factory.mktemp("library")
    (library / "threadstarter.py").write_text(textwrap.dedent("""\
        import threading

        _stop = threading.Event()
        threading.Thread(target=_stop.wait, name="poller", daemon=True).start()
        started = True
    """))
    on_pythonpath(monkeypatch, library)
    monkeypatch.syspath_prepend(str(library))
    _, steps = run_pipeline(project, one_step(project, "threads.ipynb"))
    outputs, start = steps["only"]
    assert outputs == {"threads": True}  # the step ran, cold
    assert start == ("cold: importing threadstarter started Python threads (poller); "
                     "forking would copy a process with threads")


def test_a_template_stuck_in_its_imports_makes_steps_start_cold(project: Project,
                                                                 tmp_path_factory,
                                                                 monkeypatch) -> None:
    library = tmp_path_factory.mktemp("library")
    (library / "threadstarter.py").write_text(textwrap.dedent("""\
        import sys
        import time

        if "kernel_template" in " ".join(sys.argv):  # only in the template: stuck there
            time.sleep(120)
        started = True
    """))
    on_pythonpath(monkeypatch, library)
    monkeypatch.syspath_prepend(str(library))
    monkeypatch.setattr(warm, "READY_SECONDS", 2)
    _, steps = run_pipeline(project, one_step(project, "threads.ipynb"))
    assert steps["only"] == ({"threads": True}, "cold: the template kernel process did not "
                                                "finish its imports in 2 s")


def test_the_spec_can_list_modules_to_preload(project: Project) -> None:
    spec = one_step(project, "clean.ipynb")
    spec.write_text("name: one\npreload: [xml.dom.minidom]\nsteps:\n"
                    "  only:\n    notebook: clean.ipynb\n")
    steps, template = run_with_its_template(project, spec)
    assert steps["only"][1] == "warm"
    assert "xml.dom.minidom" in template.preloaded and "sklearn" in template.preloaded


def test_a_preload_entry_that_is_no_module_name_is_refused(project: Project) -> None:
    shutil.copy(FIXTURES / "clean.ipynb", project.root / "clean.ipynb")
    spec = project.root / "bad.yaml"
    spec.write_text("name: bad\npreload:\n  - pandas\n  - os; rm -rf\nsteps:\n"
                    "  only:\n    notebook: clean.ipynb\n")
    with pytest.raises(InvalidInput, match=r"bad.yaml: pipeline 'bad': preload: 'os; rm -rf' "
                                           r"is not a module name.*\(line 4\)"):
        load_spec(spec, project.root)


def test_elsewhere_than_linux_steps_start_cold(monkeypatch) -> None:
    """Simulated (this machine is Linux): the decision, not a run."""
    monkeypatch.setattr(sys, "platform", "darwin")
    assert WarmStart().start("blake3:x").note == \
        "cold: forking kernels needs Linux (this is darwin)"


def test_the_template_is_replaced_when_the_environment_changes(project: Project,
                                                               tmp_path_factory,
                                                               monkeypatch) -> None:
    """A package installed between two runs changes the environment's fingerprint (the
    cache key's): the next run starts a new template and the old one is gone."""
    site = tmp_path_factory.mktemp("site")
    monkeypatch.syspath_prepend(str(site))
    spec = one_step(project, "clean.ipynb")
    executor = LocalExecutor()
    try:
        run_pipeline(project, spec, executor=executor)
        first = executor.warm._template
        run_pipeline(project, spec, executor=executor, force=["all"])
        assert executor.warm._template is first and first.alive()  # reused
        (site / "freshly_installed-1.0.dist-info").mkdir()
        _, steps = run_pipeline(project, spec, executor=executor)  # not cached: new env
        second = executor.warm._template
        assert second is not first and second.alive() and steps["only"][1] == "warm"
        assert not first.alive() and first.process.returncode is not None
    finally:
        executor.close()
    assert not second.alive()


def test_an_environment_variable_the_template_lacks_makes_a_step_start_cold(
        project: Project, monkeypatch) -> None:
    """A variable set after the template imported (a module may have read it then) is
    not one the step would see as a fresh process does: that step starts cold."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # an earlier test may have set it
    spec = one_step(project, "clean.ipynb")
    executor = LocalExecutor()
    try:
        assert run_pipeline(project, spec, executor=executor)[1]["only"][1] == "warm"
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        _, steps = run_pipeline(project, spec, executor=executor, force=["all"])
    finally:
        executor.close()
    assert steps["only"][1] == ("cold: the step's environment variables differ from the "
                                "template's (OMP_NUM_THREADS)")


def template_and_kernel(pid: int, seen: set[int]) -> bool:
    """Whether a child of `pid` (the template) has a child (a kernel it forked); every
    process below `pid` is added to `seen`."""
    below = descendants(pid)
    seen.update(below)
    return any(descendants(child) for child in below)


def assert_none_alive(seen: set[int]) -> None:
    assert wait_for(lambda: not any(alive(pid) for pid in seen), timeout=60), \
        [pid for pid in seen if alive(pid)]


@pytest.mark.parametrize("how", ["ctrl-c", "kill-9"])
def test_no_process_outlives_the_runner(project: Project, how: str) -> None:
    shutil.copy(NOTEBOOKS / "pipeline" / "sleep.ipynb", project.root / "sleep.ipynb")
    spec = project.root / "slow.yaml"
    spec.write_text("name: slow\nsteps:\n  nap:\n    notebook: sleep.ipynb\n"
                    "    params: {seconds: 300}\n")
    runner = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline",
                               "run", str(spec)], cwd=project.root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    try:
        assert wait_for(lambda: template_and_kernel(runner.pid, seen), timeout=120)
        with Store(project.db_path) as store:
            assert wait_for(lambda: store.pipelines.recent("slow")[0].steps[0].status
                            == "running", timeout=60)
        seen.update(descendants(runner.pid))
        if how == "ctrl-c":
            runner.send_signal(signal.SIGINT)
            assert runner.wait(timeout=60) == 130
        else:
            runner.kill()
            runner.wait(timeout=60)
        assert_none_alive(seen)
    finally:
        if runner.poll() is None:
            runner.kill()


def write_notebook(path: Path, source: str) -> None:
    """A one-cell python3 notebook."""
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "id": "only", "metadata": {}, "execution_count": None,
                   "outputs": [], "source": source}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}))


def test_a_step_does_not_carry_what_another_steps_notebook_imports(
        project: Project, tmp_path_factory, monkeypatch) -> None:
    """An import can change the process (a warnings filter, a logging handler, an exit
    handler, the umask): a step whose notebook does not import that module sees none of
    it, as cold, though the steps share one template."""
    library = tmp_path_factory.mktemp("library")
    (library / "sidefx.py").write_text(textwrap.dedent("""\
        import atexit, logging, os, warnings

        os.umask(0o077)
        warnings.filterwarnings("ignore", message="set by sidefx")
        logging.getLogger().addHandler(logging.NullHandler())

        def _exiting():
            with open(os.environ["SIDEFX_LOG"], "a") as log:
                log.write(f"{os.getpid()}\\n")

        atexit.register(_exiting)
    """))
    log = library / "exits.log"
    monkeypatch.setenv("SIDEFX_LOG", str(log))
    on_pythonpath(monkeypatch, library)
    write_notebook(project.root / "uses.ipynb", "import os\nimport scrapbook as sb\n"
                   "import sidefx\nsb.glue('pid', os.getpid())")
    write_notebook(project.root / "other.ipynb", textwrap.dedent("""\
        import logging, os, sys, warnings
        import scrapbook as sb
        umask = os.umask(0o022)
        sb.glue("seen", {"module": "sidefx" in sys.modules, "umask": umask,
                         "filter": any("sidefx" in str(f[1]) for f in warnings.filters),
                         "handlers": len(logging.getLogger().handlers)})
        sb.glue("pid", os.getpid())"""))
    spec = project.root / "two.yaml"
    spec.write_text("name: two\nsteps:\n  uses:\n    notebook: uses.ipynb\n"
                    "  other:\n    notebook: other.ipynb\n    needs: [uses]\n")
    _, steps = run_pipeline(project, spec)
    (uses, uses_start), (other, other_start) = steps["uses"], steps["other"]
    assert uses_start == other_start == "warm"
    assert other["seen"] == {"module": False, "umask": 0o022, "filter": False, "handlers": 0}
    assert log.read_text().split() == [str(uses["pid"])]  # its exit handler: its step's


def test_a_project_module_named_as_an_installed_one_is_not_preloaded(
        project: Project) -> None:
    """A kernel started in the project imports the project's croniter.py (its working
    folder comes before site-packages), so the template must not preload the installed
    croniter in its place."""
    (project.root / "croniter.py").write_text("WHO = 'the project'\n")
    spec = notebook_step(project, "shadow", "import croniter\nimport scrapbook as sb\n"
                                            "sb.glue('who', getattr(croniter, 'WHO', 'installed'))")
    steps, template = run_with_its_template(project, spec)
    assert steps["only"] == ({"who": "the project"}, "warm")
    assert template.skipped["croniter"] == "the project's own code"


def test_an_import_that_writes_output_makes_steps_start_cold(project: Project,
                                                             tmp_path_factory,
                                                             monkeypatch) -> None:
    """A cold kernel shows what an import prints or warns in the notebook; a kernel forked
    after the template imported it would not (it went to the runner's terminal)."""
    library = tmp_path_factory.mktemp("library")
    (library / "noisy.py").write_text(textwrap.dedent("""\
        import warnings

        print("noisy: hello")
        warnings.warn("noisy: careful")
    """))
    on_pythonpath(monkeypatch, library)
    spec = notebook_step(project, "noisy",
                         "import noisy\nimport scrapbook as sb\nsb.glue('ran', True)")
    outcome, steps = run_pipeline(project, spec)
    assert steps["only"] == ({"ran": True}, "cold: importing noisy wrote output "
                             "('noisy: hello'), which a cold kernel shows in the notebook")
    executed = json.loads((project.root / ".mlops" / "cache" / "pipelines"
                           / str(outcome.pipeline_run_id) / "only" / "noisy.ipynb").read_text())
    shown = "".join("".join(output.get("text", "")) for output in executed["cells"][0]["outputs"])
    assert "noisy: hello" in shown and "UserWarning: noisy: careful" in shown


def test_a_killed_template_makes_the_steps_start_cold_then_is_restarted(
        project: Project) -> None:
    """Killed between two runs of one executor (as in `mlops schedule run`): a step that
    meets it dead starts cold and says why; the next run starts a new one."""
    spec = one_step(project, "clean.ipynb")
    executor = LocalExecutor()
    try:
        run_pipeline(project, spec, executor=executor)
        killed = executor.warm._template
        killed.process.kill()
        killed.process.wait()
        assert killed.problem == "the template kernel process exited (status -9)"
        _, steps = run_pipeline(project, spec, executor=executor, force=["all"])
        assert executor.warm._template is not killed
    finally:
        executor.close()
    assert steps["only"][1] == "warm"


def test_what_an_import_sets_in_the_environment_is_set_in_a_warm_step(
        project: Project, monkeypatch) -> None:
    """scikit-learn sets KMP_DUPLICATE_LIB_OK and KMP_INIT_AT_FORK when imported (libraries
    loaded later read them): the template imported it, and the step's kernel has them,
    as after its own import in a cold kernel."""
    for name in ("KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"):  # set by an earlier import here
        monkeypatch.delenv(name, raising=False)
    spec = notebook_step(project, "env",
                         "import os\nimport sklearn\n"
                   "import scrapbook as sb\nsb.glue('kmp', {name: value for name, value in "
                   "os.environ.items() if name.startswith('KMP_')})")
    _, warm_steps = run_pipeline(project, spec)
    _, cold_steps = run_pipeline(project, spec, cold=True, force=["all"])
    assert warm_steps["only"][1] == "warm"
    assert warm_steps["only"][0] == cold_steps["only"][0] == {
        "kmp": {"KMP_DUPLICATE_LIB_OK": "True", "KMP_INIT_AT_FORK": "FALSE"}}


def test_a_module_imported_by_the_template_sees_the_kernels_matplotlib_backend(
        project: Project, tmp_path_factory, monkeypatch) -> None:
    """matplotlib reads MPLBACKEND when imported, and a kernel sets it (inline plots)
    before any cell runs: the template sets it before its imports, as a kernel would."""
    library = tmp_path_factory.mktemp("library")
    (library / "backendreader.py").write_text("import os\n\nSEEN = os.environ.get('MPLBACKEND')\n")
    on_pythonpath(monkeypatch, library)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    spec = notebook_step(project, "plots",
                         "import backendreader\n"
                   "import scrapbook as sb\nsb.glue('seen', backendreader.SEEN)")
    _, steps = run_pipeline(project, spec)
    assert steps["only"] == ({"seen": "module://matplotlib_inline.backend_inline"}, "warm")


def test_a_template_closed_before_its_answer_was_read_ends_quietly(project: Project,
                                                                     capfd) -> None:
    """A run that fails before its kernel starts closes the template without reading what
    it preloaded: the template ends without a traceback on the user's terminal."""
    template = warm.KernelTemplate(project.root, "digest", ["json"])
    try:
        readable, _, _ = select.select([template._socket], [], [], 60)
        assert readable  # its answer waits, unread
        template._stream.close()
        template._socket.close()
        assert template.process.wait(timeout=60) == 0
    finally:
        template.close()
    assert "Traceback" not in capfd.readouterr().err


def test_imports_of_malformed_notebooks_are_none() -> None:
    for text in ('{"cells": 5}', '{"cells": null}', "[1]", "null", "not json",
                 '{"cells": [{"cell_type": "code", "source": [1, "import os"]}]}'):
        assert warm.notebook_text_imports(text) in ([], ["os"]), text


def test_a_malformed_notebook_is_said_in_one_line(project: Project) -> None:
    (project.root / "bad.ipynb").write_text('{"cells": 5, "nbformat": 4}')
    spec = project.root / "bad.yaml"
    spec.write_text(ONE_STEP.format(name="bad", notebook="bad.ipynb"))
    piped = cli(project, "pipeline", "run", str(spec))
    assert piped.returncode == 1 and "Traceback" not in piped.stderr, piped.stderr
    assert piped.stderr.strip().splitlines()[-1] == (
        f"mlops: error: {project.root / 'bad.ipynb'}: not a notebook: its 'cells' is not "
        "a list of cells")
    ran = cli(project, "run", "bad.ipynb")  # papermill says what is wrong, as cold
    assert ran.returncode != 0 and "Traceback" not in ran.stderr, ran.stderr


def test_a_preloaded_file_outside_the_installation_that_changed_restarts_the_template(
        project: Project, tmp_path_factory, monkeypatch) -> None:
    """A library on PYTHONPATH (or installed editable) changes without any version
    changing: the next run of a long-lived executor (`mlops schedule run`) runs the
    new code, as a cold kernel would, in a new template."""
    library = tmp_path_factory.mktemp("library")
    source = library / "libver.py"
    source.write_text("VERSION = 1\n")
    on_pythonpath(monkeypatch, library)
    spec = notebook_step(project, "ver", "import libver\nimport scrapbook as sb\n"
                                         "sb.glue('version', libver.VERSION)")
    executor = LocalExecutor()
    try:
        _, first = run_pipeline(project, spec, executor=executor)
        before = executor.warm._template
        assert str(source) in before.info().sources
        source.write_text("VERSION = 2\n")
        later = source.stat().st_mtime + 5  # a new time, however coarse the clock
        os.utime(source, (later, later))
        assert executor.warm.start().note == \
            f"cold: {source} changed since the template kernel process imported it"
        _, second = run_pipeline(project, spec, executor=executor, force=["all"])
        assert executor.warm._template is not before
    finally:
        executor.close()
    assert first["only"] == ({"version": 1}, "warm")
    assert second["only"] == ({"version": 2}, "warm")


def test_a_copy_of_the_template_made_by_an_import_that_forks_ends_at_once(
        project: Project, tmp_path_factory, monkeypatch) -> None:
    """Left running, the copy would go on with the template's preloading and answer on
    the runner's socket as well."""
    library = tmp_path_factory.mktemp("library")
    (library / "forker.py").write_text(textwrap.dedent("""\
        import os

        child = os.fork()
        if child:
            with open(os.environ["FORKER_LOG"], "w") as log:
                log.write(str(child))
    """))
    log = library / "child.txt"
    monkeypatch.setenv("FORKER_LOG", str(log))
    on_pythonpath(monkeypatch, library)
    template = warm.KernelTemplate(project.root, "digest", ["forker"])
    try:
        assert template.info() is not None and "forker" in template.info().preloaded
        assert wait_for(lambda: not alive(int(log.read_text())), timeout=30)
    finally:
        template.close()


def test_the_template_preloads_what_every_notebook_imports() -> None:
    assert warm.common_imports([["pandas", "sklearn.metrics", "extra"],
                                ["sklearn.model_selection", "pandas"]]) == \
        ["pandas", "sklearn"]
    assert warm.common_imports([]) == []


def test_imports_are_learned_from_the_notebooks() -> None:
    assert notebook_imports(FIXTURES / "dirty.ipynb") == ["os", "sys", "numpy", "scrapbook",
                                                          "sklearn"]
    train = Path(__file__).parent.parent / "notebooks" / "train.ipynb"
    assert preload_modules([train]) == [
        "pathlib", "pandas", "scrapbook", "sklearn.linear_model", "sklearn.model_selection",
        "sklearn.pipeline", "sklearn.preprocessing", "jupyter_mlops.models", "jupyter_mlops",
        "skops.io", "jupyter_mlops.kernel_magics", "jupyter_mlops.kernel_magics.magics",
        "IPython.core.magics.extension"]


def cli(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", *args],
                          cwd=project.root, capture_output=True, text=True, timeout=600)


def test_mlops_run_and_reproduce_fork_their_kernel_and_say_how(project: Project) -> None:
    """One notebook, `mlops run` and `mlops reproduce`: the kernel is forked from a
    template that imported while the run was prepared (the inputs checked), and the
    run's tag says how it started; `--cold` starts it as before."""
    shutil.copy(NOTEBOOKS / "pipeline" / "make.ipynb", project.root / "make.ipynb")
    tags = {}
    for extra, how in (((), "warm"), (("--cold",), "cold: asked for (--cold)")):
        done = cli(project, "run", "make.ipynb", "-p", "n=2", *extra)
        assert done.returncode == 0, done.stderr
        assert f"(its kernel started {how})" in done.stderr
        with Store(project.db_path) as store:
            [run] = store.runs.search(limit=1)
            tags[how] = run.tags.get(KERNEL_TAG)
            again = cli(project, "reproduce", str(run.id), *extra)
            assert again.returncode == 0, again.stdout + again.stderr
            assert f"its kernel started {how}" in again.stderr
            assert again.stdout.startswith(f"reproduced: run {run.id + 1} reproduces")
            tags[f"reproduce {how}"] = store.runs.get(run.id + 1).tags.get(KERNEL_TAG)
    assert tags == {"warm": "warm", "cold: asked for (--cold)": "cold: asked for (--cold)",
                    "reproduce warm": "warm",
                    "reproduce cold: asked for (--cold)": "cold: asked for (--cold)"}


def test_no_process_outlives_mlops_run(project: Project) -> None:
    """kill -9 of `mlops run` while its forked kernel runs a cell: the template and the
    kernel go with it."""
    shutil.copy(NOTEBOOKS / "pipeline" / "sleep.ipynb", project.root / "sleep.ipynb")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlops.cli.main", "run",
                             "sleep.ipynb", "-p", "seconds=300"], cwd=project.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    try:
        assert wait_for(lambda: template_and_kernel(proc.pid, seen), timeout=120)
        proc.kill()
        proc.wait(timeout=60)
        assert_none_alive(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
