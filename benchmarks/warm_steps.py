"""Where a pipeline step's time goes, and what warm steps save (issue 16).

    python benchmarks/warm_steps.py [breakdown] [compare] [trivial] [cached] [single]

1. `breakdown`: one real `papermill.execute_notebook` of each example notebook,
   timed by its parts: starting the kernel and waiting until it answers, the
   notebook's import cell, `%load_ext jupyter_mlops` + `%mlops start` (our
   recorder), the notebook's own work, `%mlops end` (glue), papermill's
   translation of the parameters, nbformat validation and writes; then the
   runner's HTML report of the executed notebook. The timers wrap the real
   functions (nothing is replaced); cell times are papermill's own metadata.
2. `compare`: the example pipeline with `--force all`, warm (the default) and
   `--cold`, beside every code cell of the three notebooks run in order in
   one already-started kernel; interleaved rounds, medians.
3. `trivial`: 20 independent trivial notebooks, `--jobs 1`, warm and cold,
   seconds per step.
4. `cached`: a fully cached `mlops pipeline run` (wall of the command).
5. `single`: `mlops run notebooks/train.ipynb` and `mlops reproduce` of the run it
   recorded, warm (the default) and `--cold`, interleaved rounds, medians.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).parent.parent
DATA = Path(__file__).parent / ".data"
sys.path.insert(0, str(Path(__file__).parent))

from pipelines import cached_run, example_project, wall  # noqa: E402


class Timers:
    """Seconds spent in wrapped callables, by label (a benchmark's stopwatch)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)
        timers = self

        if _is_coroutine(original):
            @functools.wraps(original)
            async def timed(*args, **kw):
                start = time.perf_counter()
                try:
                    return await original(*args, **kw)
                finally:
                    timers.add(label, time.perf_counter() - start)
        else:
            @functools.wraps(original)
            def timed(*args, **kw):
                start = time.perf_counter()
                try:
                    return original(*args, **kw)
                finally:
                    timers.add(label, time.perf_counter() - start)
        setattr(owner, name, timed)

    def add(self, label: str, seconds: float) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds
        self.calls[label] = self.calls.get(label, 0) + 1


def _is_coroutine(function: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(function)


def _cell_kind(source: str, tags: list[str], seen: set[str]) -> str:
    """What a code cell of the example notebooks does (they share one layout)."""
    if "injected-parameters" in tags or "parameters" in tags:
        return "parameters"
    if "%load_ext jupyter_mlops" in source:
        return "recorder_start"
    if "%mlops end" in source:
        return "recorder_log_and_end"
    if "import " in source and "imports" not in seen:
        return "imports"
    return "work"


def breakdown(root: Path) -> dict:
    """One papermill run per example notebook, split into its parts."""
    import nbclient
    import nbformat
    import papermill as pm
    import papermill.execute
    import papermill.iorw

    from jupyter_mlops.pipelines.reports import ReportRenderer

    timers = Timers()
    timers.wrap(nbclient.NotebookClient, "start_new_kernel", "kernel_process_start")
    timers.wrap(nbclient.NotebookClient, "start_new_kernel_client", "kernel_until_ready")
    timers.wrap(nbclient.NotebookClient, "_cleanup_kernel", "kernel_shutdown")
    timers.wrap(papermill.execute, "parameterize_notebook", "papermill_translation")
    timers.wrap(nbformat, "validate", "nbformat_validate")
    timers.wrap(papermill.iorw, "write_ipynb", "papermill_writes")
    timers.wrap(papermill.execute, "load_notebook_node", "papermill_read")
    reports = ReportRenderer()
    reports.warm_up()
    steps = {"prepare": {"test_size": 0.25, "seed": 7}, "train": {"C": 0.5, "seed": 7},
             "evaluate": {"model": "models/classifier.skops"}}
    results = {}
    for step, params in steps.items():
        timers.seconds.clear()
        timers.calls.clear()
        out = DATA / f"breakdown-{step}.ipynb"
        start = time.perf_counter()
        pm.execute_notebook(str(root / "notebooks" / f"{step}.ipynb"), str(out),
                            parameters=params, cwd=str(root), progress_bar=False)
        total = time.perf_counter() - start
        cells: dict[str, float] = {}
        executed = json.loads(out.read_text())
        for cell in executed["cells"]:
            if cell["cell_type"] != "code":
                continue
            kind = _cell_kind("".join(cell["source"]), cell["metadata"].get("tags", []),
                              set(cells))
            seconds = cell["metadata"].get("papermill", {}).get("duration") or 0.0
            cells[kind] = cells.get(kind, 0.0) + seconds
        start = time.perf_counter()
        reports.render(out.read_bytes())
        report = time.perf_counter() - start
        parts = {f"cells_{k}_s": round(v, 3) for k, v in cells.items()}
        parts.update({f"{k}_s": round(v, 3) for k, v in timers.seconds.items()})
        parts["nbformat_validate_calls"] = timers.calls.get("nbformat_validate", 0)
        parts["report_render_s"] = round(report, 3)
        parts["papermill_total_s"] = round(total, 3)
        parts["papermill_other_s"] = round(total - sum(cells.values()) - sum(
            v for k, v in timers.seconds.items() if k.startswith("kernel")), 3)
        results[step] = parts
    return results


EXAMPLE_PARAMS = {"prepare": {"test_size": 0.25, "seed": 7}, "train": {"C": 0.5, "seed": 7},
                  "evaluate": {"model": "models/classifier.skops"}}


def one_kernel(root: Path) -> float:
    """Every code cell of the three notebooks in order, each notebook's parameters as
    the pipeline gives them, in one kernel started (and ready) before the clock."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(cwd=str(root), env={**os.environ, "MLOPS_HOME": str(root)})
    try:
        cells = []
        for step, params in EXAMPLE_PARAMS.items():
            notebook = json.loads((root / "notebooks" / f"{step}.ipynb").read_text())
            for cell in notebook["cells"]:
                if cell["cell_type"] != "code":
                    continue
                cells.append("".join(cell["source"]))
                if "parameters" in cell["metadata"].get("tags", []):
                    cells.append("\n".join(f"{k} = {v!r}" for k, v in params.items()))
        start = time.perf_counter()
        for code in cells:
            reply = kc.execute_interactive(code, timeout=300, output_hook=lambda msg: None)
            assert reply["content"]["status"] == "ok", reply["content"]
        return time.perf_counter() - start
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def compare(root: Path, rounds: int = 3) -> dict:
    """The example pipeline, `--force all`, warm and cold, beside the one-kernel
    baseline; interleaved rounds, medians."""
    command = [sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline", "run",
               "pipelines/train.yaml", "--force", "all"]
    warm, cold, baseline = [], [], []
    for _ in range(rounds):
        warm.append(wall(command, root, 1))
        cold.append(wall([*command, "--cold"], root, 1))
        baseline.append(one_kernel(root))
    result = {"warm_s": statistics.median(warm), "cold_s": statistics.median(cold),
              "one_kernel_s": statistics.median(baseline),
              "samples": {"warm": warm, "cold": cold, "one_kernel": baseline}}
    result["warm_over_one_kernel"] = result["warm_s"] / result["one_kernel_s"]
    result["cold_over_one_kernel"] = result["cold_s"] / result["one_kernel_s"]
    return result


def trivial(root: Path, steps: int = 20) -> dict:
    """20 independent trivial notebooks (the pipeline tests' make.ipynb: %mlops start,
    a param, a file, a metric, two glued values), `--jobs 1`, through
    `PipelineRunner.run()` in this process: cold; warm with the template started by
    the run (its imports included); warm with a template already running (as in
    `mlops schedule run`). Two interleaved rounds, the better of each."""
    from jupyter_mlops.pipelines.runner import PipelineRunner
    from jupyter_mlops.pipelines.spec import load_spec
    from jupyter_mlops.project import find_project
    from jupyter_mlops.store import Store

    shutil.copy(REPO / "tests" / "notebooks" / "pipeline" / "make.ipynb", root / "make.ipynb")
    spec_path = root / "twenty.yaml"
    spec_path.write_text("name: twenty\nsteps:\n" + "".join(
        f"  s{i}:\n    notebook: make.ipynb\n    params: {{n: {i}, out: out/{i}.txt}}\n"
        for i in range(steps)))
    from jupyter_mlops.pipelines.executors import LocalExecutor

    project = find_project(root)
    shared = LocalExecutor()  # as `mlops schedule run`: one template for every run
    result: dict = {}
    rounds = (("warm", None), ("cold", None), ("warm_reused_template", shared),
              ("warm", None), ("cold", None), ("warm_reused_template", shared))
    try:
        with Store(project.db_path) as store:  # a first run starts the shared template
            assert PipelineRunner(load_spec(spec_path, root), project, store, force=["all"],
                                  executor=shared).run().ok
        for label, executor in rounds:
            with Store(project.db_path) as store:
                start = time.perf_counter()
                outcome = PipelineRunner(load_spec(spec_path, root), project, store,
                                         force=["all"], cold=label == "cold",
                                         executor=executor).run()
                elapsed = time.perf_counter() - start
            assert outcome.ok
            result.setdefault(f"{label}_per_step_s", []).append(elapsed / steps)
    finally:
        shared.close()
    return {key: min(values) for key, values in result.items()} | {"samples": result}


def single(root: Path, rounds: int = 3) -> dict:
    """One notebook through `mlops run` and `mlops reproduce`, warm and cold, alternating;
    wall of each command, medians (and every sample)."""
    mlops = [sys.executable, "-m", "jupyter_mlops.cli.main"]
    samples: dict[str, list[float]] = {}

    def timed(label: str, args: list[str]) -> str:
        start = time.perf_counter()
        done = subprocess.run(args, cwd=root, capture_output=True, text=True)
        samples.setdefault(label, []).append(time.perf_counter() - start)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    for _ in range(rounds):
        for how, extra in (("warm", []), ("cold", ["--cold"])):
            timed(f"run_{how}_s", [*mlops, "run", "notebooks/train.ipynb", *extra])
            latest = json.loads(timed("ls", [*mlops, "runs", "ls", "--json", "--limit", "1"]))
            run_id = str(latest[0]["id"])
            timed(f"reproduce_{how}_s", [*mlops, "reproduce", run_id, *extra])
    samples.pop("ls")
    medians = {label: statistics.median(values) for label, values in samples.items()}
    return medians | {"run_warm_over_cold": medians["run_warm_s"] / medians["run_cold_s"],
                      "reproduce_warm_over_cold":
                          medians["reproduce_warm_s"] / medians["reproduce_cold_s"],
                      "samples": samples}


def main() -> None:
    wanted = set(sys.argv[1:]) or {"breakdown", "compare", "trivial", "cached", "single"}
    root = example_project()
    subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline", "run",
                    "pipelines/train.yaml"], cwd=root, check=True, capture_output=True)
    results: dict = {}
    benches = [("breakdown", breakdown), ("compare", compare), ("trivial", trivial),
               ("cached", cached_run), ("single", single)]
    for name, bench in benches:
        if name in wanted:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results[name] = bench(root)
            print(json.dumps({name: results[name]}, indent=2), flush=True)
    target = Path(__file__).parent / "warm-steps-results.json"
    previous = json.loads(target.read_text()) if target.exists() else {}
    target.write_text(json.dumps({**previous, **results}, indent=2))


if __name__ == "__main__":
    main()
