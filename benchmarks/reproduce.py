"""What `mlops reproduce` costs beyond papermill: the example's train step re-executed
from its record, beside papermill executing the same notebook with the same parameters
in the same kind of scratch folder, alternating in one process.

    python benchmarks/reproduce.py [--rounds 3] [--json reproduce-results.json]

Sets up the example project in a temporary folder and runs its training pipeline
once (the record to reproduce). Each round then times, in turn:

- papermill: copy train.ipynb and its input into a fresh folder, execute it with
  papermill (the step's parameters, the project as MLOPS_HOME), as `mlops run` does;
- reproduce: `reproduce()` of the train step's run (read the record, check the
  input's digest and place it, write the snapshot, execute with papermill, find the
  new run, compare metrics, params, datasets and the model).

Both execute the same cells in a fresh kernel, so the difference is what reproduce
adds; on a shared machine that difference is within the noise of a kernel start, so
the time reproduce spends outside its papermill call is also measured directly (its
own work). Issue 13's goal: at most 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import jupyter_mlops as mlops
    from jupyter_mlops.pipelines.execution import execute_notebook
    from jupyter_mlops.project import find_project
    from jupyter_mlops.reproduce import run as reproduce_module
    from jupyter_mlops.reproduce.diff import blob_reader
    from jupyter_mlops.reproduce.run import Options, reproduce
    from jupyter_mlops.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-reproduce-") as tmp:
        root = Path(tmp) / "project"
        mlops.init(root)
        for folder in ("data", "notebooks", "pipelines"):
            shutil.copytree(ROOT / folder, root / folder,
                            ignore=shutil.ignore_patterns("*.parquet", "outputs"))
        os.environ["MLOPS_HOME"] = str(root)
        subprocess.run([sys.executable, "-m", "jupyter_mlops.cli.main", "pipeline", "run",
                        "pipelines/train.yaml"], cwd=root, check=True, capture_output=True)
        project = find_project(root)
        train_run = 2

        def with_papermill(store: Store) -> float:
            folder = Path(tempfile.mkdtemp(dir=tmp))
            started = time.perf_counter()
            (folder / "data").mkdir()
            shutil.copyfile(root / "data" / "train.parquet", folder / "data" / "train.parquet")
            shutil.copyfile(root / "notebooks" / "train.ipynb", folder / "train.ipynb")
            error = execute_notebook(str(folder / "train.ipynb"), str(folder / "out.ipynb"),
                                     {"C": 0.5, "seed": 7}, str(folder),
                                     {"MLOPS_HOME": str(root),
                                      "MLOPS_NOTEBOOK_PATH": str(folder / "train.ipynb")})
            assert error is None, error
            return time.perf_counter() - started

        inside_papermill: list[float] = []
        execute = reproduce_module.run_notebook

        def timed_execute(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            started = time.perf_counter()
            try:
                return execute(*args, **kwargs)
            finally:
                inside_papermill.append(time.perf_counter() - started)

        reproduce_module.run_notebook = timed_execute
        own_work: list[float] = []

        def with_reproduce(store: Store) -> float:
            started = time.perf_counter()
            found = reproduce(project, store, blob_reader(project, store), str(train_run),
                              Options())
            assert found.verdict == "reproduced", found
            elapsed = time.perf_counter() - started
            own_work.append(elapsed - inside_papermill[-1])
            return elapsed

        times: dict[str, list[float]] = {"papermill": [], "reproduce": []}
        with Store(project.db_path) as store:
            for round_number in range(args.rounds):
                for label, timed in (("papermill", with_papermill),
                                     ("reproduce", with_reproduce)):
                    times[label].append(timed(store))
                print(f"round {round_number + 1}: papermill {times['papermill'][-1]:.2f} s, "
                      f"reproduce {times['reproduce'][-1]:.2f} s", file=sys.stderr)
    medians = {label: statistics.median(values) for label, values in times.items()}
    result = {"rounds": args.rounds, "papermill_s": times["papermill"],
              "reproduce_s": times["reproduce"], "median_papermill_s": medians["papermill"],
              "median_reproduce_s": medians["reproduce"],
              "overhead_s": medians["reproduce"] - medians["papermill"],
              "reproduce_own_work_s": own_work,
              "median_reproduce_own_work_s": statistics.median(own_work),
              "ratio": medians["reproduce"] / medians["papermill"]}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
