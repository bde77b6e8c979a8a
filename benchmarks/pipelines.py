"""Speed figures of notebook pipelines, each beside a baseline measured in the same run.

    python benchmarks/pipelines.py

1. A fully cached `mlops pipeline run` of the example project (wall time of the
   command; baseline: `python -c pass`), and which heavy modules it imports.
2. The runner's own overhead per executed step: the example's train step run
   through the runner (`--force train`, the other steps cached) against
   `papermill.execute_notebook` of the same notebook with the same parameters.
3. `--jobs 2` with two independent 5-second steps (baseline: 10 s if serial).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).parent.parent
DATA = Path(__file__).parent / ".data"
HEAVY = ("papermill", "nbformat", "jsonschema", "pandas", "nbconvert", "scrapbook")


def example_project() -> Path:
    import jupyter_mlops as mlops

    root = DATA / "example"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for folder in ("data", "notebooks", "pipelines"):
        shutil.copytree(REPO / folder, root / folder,
                        ignore=shutil.ignore_patterns("*.parquet", "outputs"))
    mlops.init(root)
    return root


def wall(args: list[str], cwd: Path, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, cwd=cwd, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def cached_run(root: Path) -> dict:
    command = [sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline", "run",
               "pipelines/train.yaml"]
    subprocess.run(command, cwd=root, check=True, capture_output=True)  # execute once
    baseline = wall([sys.executable, "-c", "pass"], root, 10)
    cached = wall(command, root, 10)
    trace = subprocess.run([sys.executable, "-X", "importtime", *command[1:]], cwd=root,
                           capture_output=True, text=True, check=True).stderr
    imported = sorted({line.split("|")[-1].strip() for line in trace.splitlines()
                       if "|" in line} & set(HEAVY))
    return {"cached_run_s": cached, "python_startup_s": baseline, "heavy_imports": imported}


def step_overhead(root: Path, repeat: int = 7) -> dict:
    """Paired, interleaved runs; the overhead is the median of the pairs' differences."""
    import papermill as pm

    from jupyter_mlops.pipelines.runner import PipelineRunner
    from jupyter_mlops.pipelines.spec import load_spec
    from jupyter_mlops.project import find_project
    from jupyter_mlops.store import Store

    project = find_project(root)
    shutil.copy(REPO / "tests" / "notebooks" / "pipeline" / "make.ipynb", root / "make.ipynb")
    (root / "one.yaml").write_text("name: one\nsteps:\n  make:\n    notebook: make.ipynb\n")
    cases = {
        "trivial": (root / "one.yaml", "make", root / "make.ipynb", {}),
        "example_train": (root / "pipelines" / "train.yaml", "train",
                          root / "notebooks" / "train.ipynb", {"C": 0.5, "seed": 7}),
    }
    results = {}
    for case, (spec_path, step, notebook, params) in cases.items():
        spec = load_spec(spec_path, root)
        papermill_s, runner_s, differences = [], [], []
        for _ in range(repeat):
            start = time.perf_counter()
            pm.execute_notebook(str(notebook), str(DATA / "out.ipynb"), parameters=params,
                                cwd=str(root), progress_bar=False)
            papermill_s.append(time.perf_counter() - start)
            with Store(project.db_path) as store:
                start = time.perf_counter()
                outcome = PipelineRunner(spec, project, store, force=[step]).run()
                runner_s.append(time.perf_counter() - start)
            assert outcome.ok and outcome.steps[step].status == "finished"
            differences.append(runner_s[-1] - papermill_s[-1])
        results[case] = {"papermill_s": statistics.median(papermill_s),
                         "runner_s": statistics.median(runner_s),
                         "overhead_s": statistics.median(differences)}
    return results


def parallel(root: Path) -> dict:
    from jupyter_mlops.pipelines.runner import PipelineRunner
    from jupyter_mlops.pipelines.spec import load_spec
    from jupyter_mlops.project import find_project
    from jupyter_mlops.store import Store

    shutil.copy(REPO / "tests" / "notebooks" / "pipeline" / "sleep.ipynb", root / "sleep.ipynb")
    spec_path = root / "parallel.yaml"
    spec_path.write_text("name: parallel\nsteps:\n"
                         "  left:\n    notebook: sleep.ipynb\n    params: {seconds: 5}\n"
                         "  right:\n    notebook: sleep.ipynb\n    params: {seconds: 5, "
                         "label: b}\n")
    project = find_project(root)
    with Store(project.db_path) as store:
        start = time.perf_counter()
        outcome = PipelineRunner(load_spec(spec_path, root), project, store, jobs=2,
                                 force=["all"]).run()
        elapsed = time.perf_counter() - start
    assert outcome.ok
    return {"two_5s_steps_jobs2_s": elapsed, "serial_sleep_s": 10.0}


def main() -> None:
    root = example_project()
    results = {}
    for name, bench in [("cached", cached_run), ("overhead", step_overhead),
                        ("parallel", parallel)]:
        print(f"{name} ...", file=sys.stderr, flush=True)
        results[name] = bench(root)
        print(json.dumps({name: results[name]}, indent=2), flush=True)
    (Path(__file__).parent / "pipelines-results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
